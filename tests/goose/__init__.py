"""The migrator beside the real goose (``.tools/bin/goose`` and ``goose-provider``) on a real
PostgreSQL: interop, the corpora, parser conformance, envsub, the line limit, Go migrations and
files that end their own transaction."""
