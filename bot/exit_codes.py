"""The exit codes of every `antam` command (docs/architecture.md, "Contracts"): 0 done,
1 refused or failed (an unknown code, a taken username), 2 bad usage (a value it cannot use)."""

from __future__ import annotations

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

__all__ = ["EXIT_FAILURE", "EXIT_OK", "EXIT_USAGE"]
