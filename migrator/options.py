"""What a caller lets a command go past: the refusals an operator may override.

The command line's ``--allow-missing``, ``--allow-edited``, ``--accept-edited``,
``--allow-interrupted`` and ``--allow-down`` as one object, given once to the migrator
rather than to every method.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Options:
    """The refusals a run is allowed past; each is off unless the operator says otherwise."""

    allow_missing: bool = False  # apply pending files older than the highest applied version
    allow_edited: bool = False  # go on although an applied file was edited or removed (reported again)
    accept_edited: bool = False  # record the edited applied files' new checksums, then go on
    allow_interrupted: bool = False  # roll back although a NO TRANSACTION run stopped part-way
    allow_down: bool = False  # let migrate_to roll back to a version below the database's
