"""Mutation testing: the score over mutmut's verdicts, the equivalent mutants, and the pytest
plugin code that orders the tests and times them under a mutant (docs/mutation-testing.md)."""
