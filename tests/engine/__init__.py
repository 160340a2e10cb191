"""The program under the real Pulumi engine (``.tools/bin/pulumi`` and its plugins), with the
resources that cannot run here left to placeholder providers (tests/support/engine.py)."""
