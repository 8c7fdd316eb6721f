"""Small-cell protection (docs/architecture.md, "Privacy invariants"): primary and secondary suppression, and the audit."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from referrals.suppression import disclosed_cells, protect
from referrals.tables import Cell, CellState, ProtectedTable

SHOWN, SMALL, MASKED = CellState.SHOWN, CellState.SMALL, CellState.MASKED


def states(cells: tuple[Cell, ...] | None) -> list[CellState]:
    assert cells is not None
    return [cell.state for cell in cells]


def totals(table: ProtectedTable) -> list[Cell]:
    cells = [*(table.row_totals or ()), *(table.column_totals or ())]
    return cells + ([table.grand_total] if table.grand_total is not None else [])


def all_cells(table: ProtectedTable) -> list[Cell]:
    return [cell for row in table.body for cell in row] + totals(table)


# Examples


def test_hides_a_count_of_3_as_small() -> None:
    """It hides a count of 3 as small and shows a count of 5 and a zero."""
    table = protect([[3, 5, 0]], row_totals=False, column_totals=False)
    assert states(table.body[0]) == [SMALL, SHOWN, SHOWN]
    assert disclosed_cells(table) == set()


def test_small_cell_alone_in_a_row_forces_a_second_hidden_cell() -> None:
    """It masks the smallest other count of a row whose total would give the small cell away."""
    table = protect([[3, 20, 10]], row_totals=True, column_totals=False)
    assert states(table.body[0]) == [SMALL, SHOWN, MASKED]
    assert states(table.row_totals) == [SHOWN]
    assert disclosed_cells(table) == set()


def test_both_totals_hide_a_cycle_around_a_small_cell() -> None:
    """With row and column totals the hidden cells close a cycle, and nothing else is small."""
    table = protect([[3, 10, 20], [8, 12, 30], [9, 7, 40]], row_totals=True, column_totals=True)
    assert table.body[0][0].state is SMALL
    assert all(cell.state is not SMALL for cell in all_cells(table) if cell is not table.body[0][0])
    assert sum(cell.hidden for cell in all_cells(table)) >= 4
    assert disclosed_cells(table) == set()


def test_a_cell_joining_two_hidden_blocks_is_put_on_a_cycle() -> None:
    """It masks the cheapest cell that closes a cycle through a hidden cell no cycle passes.

    Every line has two hidden cells or more, yet the small 1 at row 1, column 2 follows from
    the totals of rows 0–1 and columns 0–1; masking the 30 puts it on a cycle.
    """
    body = [[1, 2, 30, 40], [3, 4, 1, 50], [60, 70, 2, 3], [80, 90, 4, 1]]
    table = protect(body, row_totals=True, column_totals=True)
    masked = {
        (r, c) for r, row in enumerate(table.body) for c, cell in enumerate(row) if cell.state is MASKED
    }
    assert masked == {(0, 2)}
    assert not any(cell.hidden for cell in totals(table))
    assert disclosed_cells(table) == set()


def test_one_column_needs_two_hidden_cells_or_none() -> None:
    """A one-column table with its column total hides a second cell beside a lone small one."""
    table = protect([[12], [3], [7], [30]], row_totals=False, column_totals=True)
    assert [row[0].state for row in table.body] == [SHOWN, SMALL, MASKED, SHOWN]
    assert states(table.column_totals) == [SHOWN]
    assert disclosed_cells(table) == set()


def test_one_column_with_nothing_small_hides_nothing() -> None:
    """A one-column table without small counts is published whole."""
    table = protect([[12], [0], [7]], row_totals=False, column_totals=True)
    assert not any(cell.hidden for cell in all_cells(table))


def test_small_totals_are_hidden_themselves() -> None:
    """A total from 1 to threshold − 1 is small too, and so is its cell; zeros stay shown."""
    table = protect([[2, 0], [0, 0], [30, 40]], row_totals=True, column_totals=True)
    assert states(table.row_totals)[:2] == [SMALL, SHOWN]
    assert table.body[0][0].state is SMALL
    assert table.body[1][0].state is SHOWN
    assert disclosed_cells(table) == set()


def test_threshold_10() -> None:
    """With threshold 10, counts 1 to 9 are small and read "<10"."""
    table = protect([[9, 10, 1]], threshold=10, row_totals=False, column_totals=False)
    assert states(table.body[0]) == [SMALL, SHOWN, SMALL]
    assert [cell.text(table.threshold) for cell in table.body[0]] == ["<10", "10", "<10"]


def test_threshold_1_hides_nothing() -> None:
    """With threshold 1 no count is small, so nothing is hidden at all."""
    table = protect([[1, 2], [3, 0]], threshold=1, row_totals=True, column_totals=True)
    assert not any(cell.hidden for cell in all_cells(table))


@pytest.mark.parametrize("row_totals", [False, True])
@pytest.mark.parametrize("column_totals", [False, True])
@pytest.mark.parametrize("body", [[], [[], []]])
def test_empty_tables(body: list[list[int]], row_totals: bool, column_totals: bool) -> None:
    """A table without rows or columns is protected as it is, with zero totals."""
    table = protect(body, row_totals=row_totals, column_totals=column_totals)
    assert table.rows == len(body)
    assert table.columns == 0
    assert not any(cell.hidden or cell.value for cell in all_cells(table))
    assert (table.grand_total is not None) == (row_totals and column_totals)


def test_values_are_kept_in_hidden_cells() -> None:
    """It keeps every value, hidden or not, for the computation; only the state changes."""
    table = protect([[3, 20, 10], [6, 7, 8]], row_totals=True, column_totals=True)
    assert [[cell.value for cell in row] for row in table.body] == [[3, 20, 10], [6, 7, 8]]
    assert [cell.value for cell in table.row_totals or ()] == [33, 21]
    assert [cell.value for cell in table.column_totals or ()] == [9, 27, 18]
    assert table.grand_total is not None and table.grand_total.value == 54


def test_text_form() -> None:
    """Cells read "<5" when small, "*" when masked and as the number when shown."""
    table = protect([[3, 20, 12]], row_totals=True, column_totals=False)
    assert [cell.text(table.threshold) for cell in table.body[0]] == ["<5", "20", "*"]
    assert [cell.shown for cell in table.body[0]] == [None, 20, None]


@pytest.mark.parametrize(
    ("body", "threshold"),
    [([[1, 2], [3]], 5), ([[1, -2]], 5), ([[1, 2]], 0)],
    ids=["ragged", "negative", "threshold 0"],
)
def test_rejects_bad_input(body: list[list[int]], threshold: int) -> None:
    """It refuses ragged rows, negative counts and a threshold below 1."""
    with pytest.raises(ValueError):
        protect(body, threshold=threshold, row_totals=True, column_totals=True)


# The audit


def test_audit_catches_a_lone_hidden_cell_beside_its_total() -> None:
    """The audit finds a hidden cell that its row total and the shown cells give back."""
    table = ProtectedTable(
        body=((Cell(3, SMALL), Cell(20), Cell(10)),),
        row_totals=(Cell(33),),
    )
    assert disclosed_cells(table) == {("body", 0, 0)}


def test_audit_names_every_kind_of_cell() -> None:
    """The audit finds disclosed totals too, by their names."""
    table = ProtectedTable(
        body=((Cell(3, SMALL), Cell(6, MASKED)), (Cell(10), Cell(20))),
        row_totals=(Cell(9, MASKED), Cell(30)),
        column_totals=(Cell(13), Cell(26)),
        grand_total=Cell(39, MASKED),
    )
    assert disclosed_cells(table) == {
        ("body", 0, 0), ("body", 0, 1), ("row_total", 0, 0), ("grand_total", 0, 0)
    }


def test_audit_accepts_a_hidden_rectangle() -> None:
    """Four hidden cells at the corners of a rectangle cannot be worked out."""
    table = ProtectedTable(
        body=((Cell(3, SMALL), Cell(6, MASKED)), (Cell(10, MASKED), Cell(20, MASKED))),
        row_totals=(Cell(9), Cell(30)),
        column_totals=(Cell(13), Cell(26)),
        grand_total=Cell(39),
    )
    assert disclosed_cells(table) == set()


# Properties

counts = st.one_of(
    st.just(0), st.integers(min_value=1, max_value=12), st.integers(min_value=0, max_value=200)
)


@st.composite
def tables(draw: st.DrawFn) -> list[list[int]]:
    rows = draw(st.integers(min_value=0, max_value=6))
    columns = draw(st.integers(min_value=0, max_value=6))
    return [draw(st.lists(counts, min_size=columns, max_size=columns)) for _ in range(rows)]


@settings(max_examples=400, deadline=None)
@given(
    body=tables(),
    threshold=st.integers(min_value=2, max_value=11),
    row_totals=st.booleans(),
    column_totals=st.booleans(),
)
def test_protected_tables_disclose_nothing(
    body: list[list[int]], threshold: int, row_totals: bool, column_totals: bool
) -> None:
    """No hidden cell follows from the published ones; small means small, and shown means not."""
    table = protect(body, threshold=threshold, row_totals=row_totals, column_totals=column_totals)

    assert disclosed_cells(table) == set()
    for cell in all_cells(table):
        assert (cell.state is SMALL) == (1 <= cell.value < threshold)
        if cell.state is SHOWN:
            assert cell.value == 0 or cell.value >= threshold

    assert [[cell.value for cell in row] for row in table.body] == body
    row_sums = [sum(row) for row in body]
    column_sums = [sum(column) for column in zip(*body, strict=True)] if body else []
    assert (table.row_totals is not None) == row_totals
    assert (table.column_totals is not None) == column_totals
    if table.row_totals is not None:
        assert [cell.value for cell in table.row_totals] == row_sums
    if table.column_totals is not None:
        assert [cell.value for cell in table.column_totals] == column_sums
    if table.grand_total is not None:
        assert table.grand_total.value == sum(row_sums)
    assert table.threshold == threshold
