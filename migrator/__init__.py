"""A goose-compatible PostgreSQL migrator: ``python -m migrator``, or ``Migrator`` as a library."""

from migrator.api import Migrator
from migrator.events import Event, MigrationResult, RunResult
from migrator.options import Options
from migrator.safety import Safety
from migrator.store import TableName

__version__ = "0.1.0"
__all__ = ["Event", "MigrationResult", "Migrator", "Options", "RunResult", "Safety", "TableName", "__version__"]
