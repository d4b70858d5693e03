"""``python -m spikeyolo.events ...`` (also ``spikeyolo events ...``)."""

import sys

from .cli import main

sys.exit(main())
