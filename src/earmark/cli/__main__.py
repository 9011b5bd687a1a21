"""``python -m earmark.cli``: the ``earmark`` command."""

import sys

from earmark.cli.main import main

sys.exit(main())
