"""`antam` with PTB's AIORateLimiter overall limit (30 messages/s) switched off; for load_bench only.

    .venv/bin/python bench/antam_unthrottled.py run

Everything else is the real ``bot.cli.main``. The group limit and the retry-after handling stay;
only the bot-wide 30 messages per second gate goes, so that a load test measures what the
process can do rather than Telegram's broadcast limit, which AIORateLimiter mirrors.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from telegram.ext import AIORateLimiter  # noqa: E402

_original_init = AIORateLimiter.__init__


def _init(self: AIORateLimiter, *args: Any, **kwargs: Any) -> None:
    kwargs["overall_max_rate"] = 0
    _original_init(self, *args, **kwargs)


AIORateLimiter.__init__ = _init  # type: ignore[method-assign]

from bot.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
