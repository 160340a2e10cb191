"""The command line, ``python -m migrator``: only ``__main__`` imports this package.

Read in this order: ``program`` (argv to a command and its arguments, errors to exit codes),
``command_table`` (every command), ``arguments`` (what each takes, declared once through
``flags``), ``commands`` (the handlers, imported when a command runs), ``reports`` (goose's
text and the JSON documents) and ``exit_codes``.
"""
