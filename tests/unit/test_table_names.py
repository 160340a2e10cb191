"""``--table`` as PostgreSQL reads the name goose writes unquoted into its SQL (migrator/store.py)."""

from __future__ import annotations

import pytest

from migrator.errors import InputError
from migrator.table_name import TableName


@pytest.mark.parametrize(
    ("text", "schema", "name"),
    [
        ("_migrations", None, "_migrations"),
        ("Goose_DB_Version", None, "goose_db_version"),  # bare names fold to lower case
        ('"Goose"', None, "Goose"),  # quoted ones are kept as written
        ('ops."A ""quoted"" name"', "ops", 'A "quoted" name'),
        ('"Ops".Versions', "Ops", "versions"),
        ("ÉTAT.Ä", "État", "Ä"),  # only ASCII letters fold, as PostgreSQL's downcasing of identifiers
        ("s" * 63 + "." + "t" * 56, "s" * 63, "t" * 56),
    ],
)
def test_a_table_name_is_read_as_postgresql_reads_it(text: str, schema: str | None, name: str) -> None:
    assert TableName.parse(text) == TableName(schema, name)


@pytest.mark.parametrize("text", ["t" * 57, "é" * 29, "s" * 64 + ".t"])
def test_a_name_postgresql_would_cut_is_refused(text: str) -> None:
    with pytest.raises(InputError) as refused:
        TableName.parse(text)
    assert str(refused.value) == (
        f"table name {text!r} is too long: the migrator's ledger table is named after it with '_ledger' appended,"
        " and PostgreSQL cuts names at 63 bytes; use at most 56 bytes"
    )


@pytest.mark.parametrize("text", ["", "a.b.c", '"unclosed', '""', "a."])
def test_anything_but_table_or_schema_dot_table_is_refused(text: str) -> None:
    with pytest.raises(InputError) as refused:
        TableName.parse(text)
    assert str(refused.value) == f"table name {text!r} must be 'table' or 'schema.table' (parts may be \"quoted\")"
