"""The migrator against a real PostgreSQL (the session's server of tests/conftest.py): the
library, the command line in and out of a process, locks, crashes, poolers and failing servers."""
