"""Code the tests and the benchmarks share (a throwaway PostgreSQL server, the image as Pulumi
builds it) and the mutation tooling (``tools/mutation``): nothing here is a test, and
``bench/`` imports it instead of ``tests/``."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
