"""What the rehearsal and drift tests share: a scratch server of the test's own (a role that may
create databases on the test server, so its throwaway databases are the test's alone to see),
and a target whose reads can be told from writes."""

from __future__ import annotations

from psycopg import conninfo

from tests.support import login_role, query

SCRATCH_PASSWORD = "scratch-secret-pw"


def scratch_server(dsn: str, *grants: str) -> str:
    """The DSN of a role that may create databases on the test's server: the scratch server."""
    return login_role(dsn, "scratch", SCRATCH_PASSWORD, "ALTER ROLE {} CREATEDB", *grants)


def throwaway_databases(scratch_dsn: str) -> list[str]:
    """The databases the scratch role owns: those a rehearsal made and did not drop."""
    role = conninfo.conninfo_to_dict(scratch_dsn)["user"]
    rows = query(
        scratch_dsn,
        "SELECT datname FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba WHERE r.rolname = %s ORDER BY 1",
        (role,),
    )
    return [str(row[0]) for row in rows]


def reading_role(dsn: str) -> str:
    """A DSN of a role that may only read: a member of pg_read_all_data (SELECT on every table,
    USAGE on every schema), which changes no table's grants, so the drift check sees none."""
    return login_role(dsn, "readonly", "readonly-pw", "GRANT pg_read_all_data TO {}")


def replayed(*versions: int) -> dict[str, object]:
    """The ``replay`` of a JSON document, when every applied version replayed from its file."""
    return {
        "replayed": list(versions),
        "unreplayable": [],
        "edited": [],
        "complete": True,
        "failure": None,
        "message": None,
        "limitation": None,
    }
