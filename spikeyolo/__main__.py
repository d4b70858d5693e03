"""``python -m spikeyolo MODE key=value ...``: the ``spikeyolo`` command (also under ``torchrun -m spikeyolo``)."""

import sys

from .commands.cli import main

sys.exit(main())
