"""The ``earmark`` command: argparse only, one module per command group in the order of
the loop (:mod:`.project`: init, import; :mod:`.rank`: rank, queue, status; :mod:`.backup`:
backup, restore; :mod:`.train`: finetune, round, evaluate, models, export; :mod:`.review`;
:mod:`.study`: simulate, demo). :mod:`.main` builds the parser from them and runs a
command; :mod:`.common` and :mod:`.flags` hold what they share (options drawn from the
config dataclasses)."""
