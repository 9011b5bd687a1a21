"""The ``earmark`` command: argparse only, one module per command group
(:mod:`.main` holds the parser and the project commands, :mod:`.train` the fine-tuning
ones)."""
