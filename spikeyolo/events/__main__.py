"""``python -m spikeyolo.events ...``: the event-camera commands (see :mod:`spikeyolo.events.cli`)."""

import sys

from .cli import main

sys.exit(main())
