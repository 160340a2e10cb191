"""A realistic migrations directory for benchmarks: a product's schema growing over
``count`` files, as a team writes them. Tables with foreign keys, columns added and
backfilled, seed rows, views, PL/pgSQL functions and triggers in StatementBegin/End, and
indexes built CONCURRENTLY in NO TRANSACTION files, every file with its Down section.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

FIRST = datetime(2023, 1, 2, 9, 0, tzinfo=UTC)


def _table(n: int) -> tuple[str, str]:
    parent = f"    parent_id bigint REFERENCES entity{n - 7} (id) ON DELETE SET NULL,\n" if n >= 7 else ""
    return (
        f"CREATE TABLE entity{n} (\n"
        "    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n"
        f"{parent}"
        "    name text NOT NULL,\n"
        "    status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'archived')),\n"
        "    attributes jsonb NOT NULL DEFAULT '{}',\n"
        "    created_at timestamptz NOT NULL DEFAULT now()\n"
        ");\n"
        f"COMMENT ON TABLE entity{n} IS 'entity {n}; created by the API';\n",
        f"DROP TABLE entity{n};\n",
    )


def _column(n: int) -> tuple[str, str]:
    t = n - 1
    return (
        f"ALTER TABLE entity{t} ADD COLUMN updated_at timestamptz;\n"
        f"UPDATE entity{t} SET updated_at = created_at;\n"
        f"ALTER TABLE entity{t} ALTER COLUMN updated_at SET NOT NULL;\n"
        f"ALTER TABLE entity{t} ALTER COLUMN updated_at SET DEFAULT now();\n",
        f"ALTER TABLE entity{t} DROP COLUMN updated_at;\n",
    )


def _seed(n: int) -> tuple[str, str]:
    t = n - 2
    rows = ", ".join(f"('item {i}; seeded for entity{t}')" for i in range(1, 21))
    return (
        f"INSERT INTO entity{t} (name) VALUES {rows};\n",
        f"DELETE FROM entity{t} WHERE name LIKE 'item %';\n",
    )


def _trigger(n: int) -> tuple[str, str]:
    t = n - 3
    return (
        "-- +goose StatementBegin\n"
        f"CREATE FUNCTION entity{t}_touch() RETURNS trigger LANGUAGE plpgsql AS $$\n"
        "BEGIN\n"
        "    NEW.updated_at := now();\n"
        "    IF NEW.name = '' THEN\n"
        "        RAISE EXCEPTION 'empty name; refused';\n"
        "    END IF;\n"
        "    RETURN NEW;\n"
        "END;\n"
        "$$;\n"
        "-- +goose StatementEnd\n"
        f"CREATE TRIGGER entity{t}_touch BEFORE UPDATE ON entity{t}\n"
        f"    FOR EACH ROW EXECUTE FUNCTION entity{t}_touch();\n",
        f"DROP TRIGGER entity{t}_touch ON entity{t};\nDROP FUNCTION entity{t}_touch();\n",
    )


def _view(n: int) -> tuple[str, str]:
    t = n - 4
    return (
        f"CREATE VIEW active_entity{t} AS\n    SELECT id, name, created_at FROM entity{t} WHERE status = 'active';\n",
        f"DROP VIEW active_entity{t};\n",
    )


def _index(n: int) -> tuple[str, str]:
    t = n - 5
    return (
        f"CREATE INDEX CONCURRENTLY entity{t}_created_idx ON entity{t} (created_at);\n"
        f"CREATE INDEX CONCURRENTLY entity{t}_attributes_idx ON entity{t} USING gin (attributes);\n",
        f"DROP INDEX CONCURRENTLY entity{t}_attributes_idx;\nDROP INDEX CONCURRENTLY entity{t}_created_idx;\n",
    )


def _check(n: int) -> tuple[str, str]:
    t = n - 6
    return (
        "-- +goose StatementBegin\n"
        "DO $$\n"
        "BEGIN\n"
        f"    IF NOT EXISTS (SELECT 1 FROM pg_class WHERE relname = 'entity{t}') THEN\n"
        f"        RAISE EXCEPTION 'entity{t} is missing';\n"
        "    END IF;\n"
        "END\n"
        "$$;\n"
        "-- +goose StatementEnd\n",
        "SELECT 1;\n",
    )


# One cycle of seven files, each writing about the table the cycle began with.
_CYCLE: list[tuple[Callable[[int], tuple[str, str]], bool]] = [
    (_table, True),
    (_column, True),
    (_seed, True),
    (_trigger, True),
    (_view, True),
    (_index, False),  # CONCURRENTLY cannot run in a transaction
    (_check, True),
]


def write_realistic(directory: Path, count: int = 130) -> list[Path]:
    """``count`` goose files named by timestamp, one cycle of seven kinds after another."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for n in range(count):
        make, in_transaction = _CYCLE[n % len(_CYCLE)]
        up, down = make(n)
        version = (FIRST + timedelta(days=n, hours=n % 9)).strftime("%Y%m%d%H%M%S")
        header = "" if in_transaction else "-- +goose NO TRANSACTION\n"
        path = directory / f"{version}_{make.__name__.strip('_')}_{n}.sql"
        path.write_text(f"{header}-- +goose Up\n{up}\n-- +goose Down\n{down}")
        written.append(path)
    return written
