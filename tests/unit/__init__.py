"""Tests that need no database and start no process of the migrator: parsing, names, durations,
the image's file set, the import graph, the docs' links, the lock files and the score tool."""
