"""A goose-compatible PostgreSQL migrator (``python -m migrator``)."""

__version__ = "0.1.0"
