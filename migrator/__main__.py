"""``python -m migrator``: the command line, as the image's entrypoint runs it."""

import sys

from migrator.cli.program import main

sys.exit(main())
