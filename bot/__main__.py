"""`python -m bot` is the same as `antam`."""

import sys

from bot.cli import main

sys.exit(main())
