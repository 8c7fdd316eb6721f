"""Published tables after small-cell protection (docs/architecture.md, "Privacy invariants"): what a cell shows and why.

A count from 1 to ``threshold - 1`` is a *small* cell, shown as "<5" (for the default
threshold 5). A cell hidden only so that a small cell cannot be worked out from the totals
is *masked*, shown as "*". Zeros are shown: they name nobody.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

DEFAULT_THRESHOLD = 5


class CellState(StrEnum):
    SHOWN = "shown"
    # Primary suppression: 1 ≤ value < threshold.
    SMALL = "small"
    # Secondary suppression: hidden to protect a small cell elsewhere in the table.
    MASKED = "masked"


@dataclass(frozen=True)
class Cell:
    """One published count; ``value`` is for the computation only and never shown when hidden."""

    value: int
    state: CellState = CellState.SHOWN

    @property
    def hidden(self) -> bool:
        return self.state is not CellState.SHOWN

    @property
    def shown(self) -> int | None:
        """The value, or None when it must not be published."""
        return None if self.hidden else self.value

    def text(self, threshold: int) -> str:
        """How the cell reads in a table: "12", "<5" or "*"."""
        if self.state is CellState.SMALL:
            return f"<{threshold}"
        if self.state is CellState.MASKED:
            return "*"
        return str(self.value)


@dataclass(frozen=True)
class ProtectedTable:
    """A table of counts with its published totals, every cell already protected.

    ``body[r][c]`` is row r, column c. ``row_totals[r]`` is the sum of row r (published only
    for tables whose columns add up, e.g. referrals by service type); ``column_totals[c]`` is
    the sum of column c over all rows; ``grand_total`` exists when both totals do.
    """

    body: tuple[tuple[Cell, ...], ...]
    row_totals: tuple[Cell, ...] | None = None
    column_totals: tuple[Cell, ...] | None = None
    grand_total: Cell | None = None
    threshold: int = DEFAULT_THRESHOLD

    @property
    def rows(self) -> int:
        return len(self.body)

    @property
    def columns(self) -> int:
        return len(self.body[0]) if self.body else (len(self.column_totals) if self.column_totals else 0)
