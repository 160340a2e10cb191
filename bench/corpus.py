"""A realistic migrations directory for benchmarks: a product's schema growing over
``count`` files, as a team writes them. Tables with foreign keys, columns added and
backfilled, seed rows, views, PL/pgSQL functions and triggers in StatementBegin/End, and
indexes built CONCURRENTLY in NO TRANSACTION files, every file with its Down section.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

FIRST = datetime(2023, 1, 2, 9, 0, tzinfo=UTC)


class Kind(NamedTuple):
    """One kind of file: Up and Down with ``{t}`` for the table it is about, which the
    cycle's first file created ``offset`` files earlier."""

    name: str
    offset: int
    up: str
    down: str
    in_transaction: bool = True


_SEED_ROWS = ", ".join(f"('item {i}; seeded for entity{{t}}')" for i in range(1, 21))

# One cycle of seven files, each about the table the cycle began with.
CYCLE = [
    Kind(
        "table",
        0,
        "CREATE TABLE entity{t} (\n"
        "    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n"
        "{parent}"
        "    name text NOT NULL,\n"
        "    status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'archived')),\n"
        "    attributes jsonb NOT NULL DEFAULT '{{}}',\n"
        "    created_at timestamptz NOT NULL DEFAULT now()\n"
        ");\n"
        "COMMENT ON TABLE entity{t} IS 'entity {t}; created by the API';\n",
        "DROP TABLE entity{t};\n",
    ),
    Kind(
        "column",
        1,
        "ALTER TABLE entity{t} ADD COLUMN updated_at timestamptz;\n"
        "UPDATE entity{t} SET updated_at = created_at;\n"
        "ALTER TABLE entity{t} ALTER COLUMN updated_at SET NOT NULL;\n"
        "ALTER TABLE entity{t} ALTER COLUMN updated_at SET DEFAULT now();\n",
        "ALTER TABLE entity{t} DROP COLUMN updated_at;\n",
    ),
    Kind(
        "seed",
        2,
        f"INSERT INTO entity{{t}} (name) VALUES {_SEED_ROWS};\n",
        "DELETE FROM entity{t} WHERE name LIKE 'item %';\n",
    ),
    Kind(
        "trigger",
        3,
        "-- +goose StatementBegin\n"
        "CREATE FUNCTION entity{t}_touch() RETURNS trigger LANGUAGE plpgsql AS $$\n"
        "BEGIN\n"
        "    NEW.updated_at := now();\n"
        "    IF NEW.name = '' THEN\n"
        "        RAISE EXCEPTION 'empty name; refused';\n"
        "    END IF;\n"
        "    RETURN NEW;\n"
        "END;\n"
        "$$;\n"
        "-- +goose StatementEnd\n"
        "CREATE TRIGGER entity{t}_touch BEFORE UPDATE ON entity{t}\n"
        "    FOR EACH ROW EXECUTE FUNCTION entity{t}_touch();\n",
        "DROP TRIGGER entity{t}_touch ON entity{t};\nDROP FUNCTION entity{t}_touch();\n",
    ),
    Kind(
        "view",
        4,
        "CREATE VIEW active_entity{t} AS\n    SELECT id, name, created_at FROM entity{t} WHERE status = 'active';\n",
        "DROP VIEW active_entity{t};\n",
    ),
    Kind(
        "index",
        5,
        "CREATE INDEX CONCURRENTLY entity{t}_created_idx ON entity{t} (created_at);\n"
        "CREATE INDEX CONCURRENTLY entity{t}_attributes_idx ON entity{t} USING gin (attributes);\n",
        "DROP INDEX CONCURRENTLY entity{t}_attributes_idx;\nDROP INDEX CONCURRENTLY entity{t}_created_idx;\n",
        in_transaction=False,  # CONCURRENTLY cannot run in a transaction
    ),
    Kind(
        "check",
        6,
        "-- +goose StatementBegin\n"
        "DO $$\n"
        "BEGIN\n"
        "    IF NOT EXISTS (SELECT 1 FROM pg_class WHERE relname = 'entity{t}') THEN\n"
        "        RAISE EXCEPTION 'entity{t} is missing';\n"
        "    END IF;\n"
        "END\n"
        "$$;\n"
        "-- +goose StatementEnd\n",
        "SELECT 1;\n",
    ),
]


def write_realistic(directory: Path, count: int = 130) -> list[Path]:
    """``count`` goose files named by timestamp, one cycle of seven kinds after another."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for n in range(count):
        kind = CYCLE[n % len(CYCLE)]
        t = n - kind.offset
        # Every table after the first cycle refers to the one before it.
        parent = f"    parent_id bigint REFERENCES entity{t - 7} (id) ON DELETE SET NULL,\n" if t >= 7 else ""
        up, down = (text.format(t=t, parent=parent) for text in (kind.up, kind.down))
        version = (FIRST + timedelta(days=n, hours=n % 9)).strftime("%Y%m%d%H%M%S")
        header = "" if kind.in_transaction else "-- +goose NO TRANSACTION\n"
        path = directory / f"{version}_{kind.name}_{n}.sql"
        path.write_text(f"{header}-- +goose Up\n{up}\n-- +goose Down\n{down}")
        written.append(path)
    return written
