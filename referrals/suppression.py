"""Small-cell protection of published tables (docs/architecture.md, "Privacy invariants"), and an independent audit of it.

*Primary suppression* hides every published count from 1 to ``threshold - 1`` (a row of the
body or a total alike): such a count could point at a person. Zeros are shown; they name nobody.

*Secondary suppression* then hides more cells ("masked"), because a hidden count is no secret
if the published totals give it back: in a row ``3 | 10 | 13`` hiding only the 3 is useless.

The method. Picture the *augmented* table: the body, the row totals as an extra column, the
column totals as an extra row and the grand total in the corner, as far as they are published.
Every published *line* (a row or column whose cells must add up: Σ body = total) is one linear
relation. A hidden cell can be worked out exactly iff the relations pin it down whatever the
other hidden cells are.

* Without totals there are no relations: primary suppression is all there is.
* With one kind of total the lines are disjoint, so a hidden cell is safe iff its line has
  at least one other hidden cell ("0 or ≥ 2 hidden in every line").
* With both, the hidden cells are the edges of a bipartite graph between the rows and the
  columns of the augmented table. Changing hidden values without changing any line sum means
  adding +d, −d, +d, … around a cycle, so a hidden cell is safe iff it lies on a cycle: the
  graph must have no bridge (a line with exactly one hidden cell is the plainest bridge).

Finding the fewest cells to hide is an integer programme (τ-Argus solves it with a solver);
our tables are small, and a deterministic greedy rule keeps reports reproducible and easy to
review. Until nothing changes: (1) in a line with exactly one hidden cell, hide a shown cell
whose crossing line is in the same state if there is one, else its smallest non-zero cell; (2) when no line is alone, close a cycle through the first bridge with the
cheapest shown cell that does so. Every round hides one more cell, so it ends (at worst with
everything hidden). Small non-zero cells are preferred because they carry the least
information, and zeros last because a masked cell is known to be 0 or ≥ threshold: a masked
zero beside a small cell in a line with a small sum gives both away.

``disclosed_cells`` checks a protected table by exact linear algebra and shares no logic with
``protect``, so the tests can use it as an independent judge. It checks exact disclosure only;
narrowing a hidden value to a range with the bounds above (interval disclosure) is not covered.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction

from referrals.tables import DEFAULT_THRESHOLD, Cell, CellState, ProtectedTable

# (row, column) in the augmented table: row ``rows`` holds the column totals, column
# ``columns`` the row totals.
Position = tuple[int, int]
CellName = tuple[str, int, int]


def protect(
    body: Sequence[Sequence[int]],
    *,
    threshold: int = DEFAULT_THRESHOLD,
    row_totals: bool,
    column_totals: bool,
) -> ProtectedTable:
    """Protect a table of counts for publication, with the totals asked for.

    ``body[r][c]`` is row r, column c. Raises ValueError for ragged rows, negative counts or a
    threshold below 1.
    """
    if threshold < 1:
        raise ValueError(f"threshold must be at least 1, not {threshold}")
    grid = _augment(body, row_totals=row_totals, column_totals=column_totals)
    hidden = {p: CellState.SMALL for p, value in grid.values.items() if 1 <= value < threshold}
    # Each round masks at least one more cell, so this ends (at worst with everything hidden).
    while _mask_lonely_lines(grid, hidden) or (grid.crossed and _close_first_bridge(grid, hidden)):
        pass
    return grid.publish(hidden, threshold)


@dataclass(frozen=True)
class _Grid:
    rows: int
    columns: int
    row_totals: bool
    column_totals: bool
    values: dict[Position, int]
    # The published relations, each as its cells in order: body cells first, the total last.
    lines: tuple[tuple[Position, ...], ...]

    @property
    def crossed(self) -> bool:
        """Rows and columns both add up, so cells must lie on cycles, not just share lines."""
        return self.row_totals and self.column_totals

    def publish(self, hidden: dict[Position, CellState], threshold: int) -> ProtectedTable:
        def cell(position: Position) -> Cell:
            return Cell(self.values[position], hidden.get(position, CellState.SHOWN))

        rows, columns = range(self.rows), range(self.columns)
        return ProtectedTable(
            body=tuple(tuple(cell((r, c)) for c in columns) for r in rows),
            row_totals=tuple(cell((r, self.columns)) for r in rows) if self.row_totals else None,
            column_totals=(
                tuple(cell((self.rows, c)) for c in columns) if self.column_totals else None
            ),
            grand_total=cell((self.rows, self.columns)) if self.crossed else None,
            threshold=threshold,
        )


def _augment(body: Sequence[Sequence[int]], *, row_totals: bool, column_totals: bool) -> _Grid:
    rows = len(body)
    columns = len(body[0]) if rows else 0
    values: dict[Position, int] = {}
    for r, row in enumerate(body):
        if len(row) != columns:
            raise ValueError(f"row {r} has {len(row)} cells, row 0 has {columns}")
        for c, value in enumerate(row):
            if value < 0:
                raise ValueError(f"negative count {value} at row {r}, column {c}")
            values[r, c] = value

    row_lines = [tuple((r, c) for c in range(columns + 1)) for r in range(rows)]
    column_lines = [tuple((r, c) for r in range(rows + 1)) for c in range(columns)]
    lines: list[tuple[Position, ...]] = []
    if row_totals:
        for r in range(rows):
            values[r, columns] = sum(values[r, c] for c in range(columns))
        lines += row_lines
    if column_totals:
        for c in range(columns):
            values[rows, c] = sum(values[r, c] for r in range(rows))
        lines += column_lines
    if row_totals and column_totals:
        values[rows, columns] = sum(values[r, columns] for r in range(rows))
        # The total row and the total column add up to the grand total too.
        lines.append(tuple((rows, c) for c in range(columns + 1)))
        lines.append(tuple((r, columns) for r in range(rows + 1)))
    return _Grid(rows, columns, row_totals, column_totals, values, tuple(lines))


def _cost(value: int) -> tuple[bool, int]:
    """Masking order: small non-zero counts first, zeros last (see the module docstring)."""
    return (value == 0, value)


def _mask_lonely_lines(grid: _Grid, hidden: dict[Position, CellState]) -> bool:
    """Give each line with exactly one hidden cell a second one; one pass, True if any changed.

    Later lines see the cells masked for earlier ones: that often settles them too.
    """
    masked = False
    lines_of: dict[Position, list[tuple[Position, ...]]] = defaultdict(list)
    for line in grid.lines:
        for position in line:
            lines_of[position].append(line)

    def lonely_elsewhere(position: Position, line: tuple[Position, ...]) -> bool:
        """The cell's other line also has exactly one hidden cell: masking it settles both."""
        return any(
            sum(q in hidden for q in other) == 1 for other in lines_of[position] if other is not line
        )

    for line in grid.lines:
        shown = [p for p in line if p not in hidden]
        if len(line) - len(shown) != 1:
            continue
        # A line has at least two cells whenever one of them can be hidden (a one-cell line is
        # an empty row's total, 0), so ``shown`` is not empty here. Preferring a cell whose
        # crossing line is lonely too closes small rectangles instead of long chains (on random
        # tables about 30 % fewer masked cells than taking the smallest cell alone).
        index = min(
            range(len(shown)),
            key=lambda i: (not lonely_elsewhere(shown[i], line), _cost(grid.values[shown[i]]), i),
        )
        hidden[shown[index]] = CellState.MASKED
        masked = True
    return masked


def _close_first_bridge(grid: _Grid, hidden: dict[Position, CellState]) -> bool:
    """Mask one cell that puts the first bridge on a cycle; False if there is no bridge."""
    bridge = _first_bridge(grid, hidden)
    if bridge is None:
        return False
    hidden[_cheapest_closing(grid, hidden, bridge)] = CellState.MASKED
    return True


def _vertices(grid: _Grid, position: Position) -> tuple[int, int]:
    """The two lines (row vertex, column vertex) that a cell joins in the bipartite graph."""
    r, c = position
    return r, grid.rows + 1 + c


def _first_bridge(grid: _Grid, hidden: Iterable[Position]) -> Position | None:
    """The first hidden cell (row-major) that lies on no cycle of hidden cells, if any.

    Tarjan's bridge search, iterative because a national table can have thousands of rows.
    """
    adjacency: dict[int, list[tuple[int, Position]]] = defaultdict(list)
    for position in hidden:
        u, v = _vertices(grid, position)
        adjacency[u].append((v, position))
        adjacency[v].append((u, position))

    order: dict[int, int] = {}
    low: dict[int, int] = {}
    bridges: list[Position] = []
    for root in sorted(adjacency):
        if root in order:
            continue
        order[root] = low[root] = len(order)
        stack = [(root, (-1, -1), iter(adjacency[root]))]
        while stack:
            vertex, arrived_by, edges = stack[-1]
            for neighbour, edge in edges:
                if edge == arrived_by:
                    continue
                if neighbour in order:
                    low[vertex] = min(low[vertex], order[neighbour])
                else:
                    order[neighbour] = low[neighbour] = len(order)
                    stack.append((neighbour, edge, iter(adjacency[neighbour])))
                    break
            else:
                stack.pop()
                if stack:
                    parent = stack[-1][0]
                    low[parent] = min(low[parent], low[vertex])
                    if low[vertex] > order[parent]:
                        bridges.append(arrived_by)
    return min(bridges, default=None)


def _cheapest_closing(grid: _Grid, hidden: dict[Position, CellState], bridge: Position) -> Position:
    """The cheapest shown cell whose masking puts ``bridge`` on a cycle.

    Without the bridge its component falls into two sides; any cell joining a row of one side
    to a column of the other closes a cycle through the bridge.
    """
    row_vertex, column_vertex = _vertices(grid, bridge)
    neighbours: dict[int, list[int]] = defaultdict(list)
    for position in hidden:
        if position != bridge:
            u, v = _vertices(grid, position)
            neighbours[u].append(v)
            neighbours[v].append(u)
    near, far = _reach(neighbours, row_vertex), _reach(neighbours, column_vertex)

    def closes(position: Position) -> bool:
        u, v = _vertices(grid, position)
        return (u in near and v in far) or (u in far and v in near)

    candidates = [p for p in grid.values if p not in hidden and closes(p)]
    # Step (1) left no line with a single hidden cell, so both ends of the bridge have another
    # hidden cell: each side holds a row and a column, and the cells between them are shown
    # (a hidden one would make a second path, and the bridge no bridge).
    assert candidates, f"no cell closes a cycle through {bridge}"
    return min(candidates, key=lambda p: (_cost(grid.values[p]), p))


def _reach(neighbours: dict[int, list[int]], start: int) -> set[int]:
    seen = {start}
    frontier = [start]
    while frontier:
        for neighbour in neighbours[frontier.pop()]:
            if neighbour not in seen:
                seen.add(neighbour)
                frontier.append(neighbour)
    return seen


def disclosed_cells(table: ProtectedTable) -> set[CellName]:
    """The hidden cells whose exact value follows from the published cells and the totals.

    Names are ("body", r, c), ("row_total", r, 0), ("column_total", 0, c), ("grand_total", 0, 0).
    Every relation "Σ parts − whole = 0" is written over the hidden cells only (the shown ones
    are constants and do not matter for what can be determined). A hidden cell is determined iff
    its unit vector lies in the row space of that matrix, i.e. iff the reduced row echelon form
    has a row that is exactly that unit vector.
    """
    cells: dict[CellName, Cell] = {}
    for r, row in enumerate(table.body):
        for c, cell in enumerate(row):
            cells["body", r, c] = cell
    for r, cell in enumerate(table.row_totals or ()):
        cells["row_total", r, 0] = cell
    for c, cell in enumerate(table.column_totals or ()):
        cells["column_total", 0, c] = cell
    if table.grand_total is not None:
        cells["grand_total", 0, 0] = table.grand_total

    body = [("body", r, c) for r in range(len(table.body)) for c in range(len(table.body[r]))]
    relations: list[tuple[list[CellName], CellName]] = []  # (parts, whole)
    if table.row_totals is not None:
        for r in range(len(table.row_totals)):
            relations.append(([n for n in body if n[1] == r], ("row_total", r, 0)))
    if table.column_totals is not None:
        for c in range(len(table.column_totals)):
            relations.append(([n for n in body if n[2] == c], ("column_total", 0, c)))
    if table.grand_total is not None:
        grand: CellName = ("grand_total", 0, 0)
        relations.append((body, grand))
        if table.row_totals is not None:
            relations.append(([("row_total", r, 0) for r in range(len(table.row_totals))], grand))
        if table.column_totals is not None:
            columns = range(len(table.column_totals))
            relations.append(([("column_total", 0, c) for c in columns], grand))

    hidden = {name for name, cell in cells.items() if cell.hidden}
    equations: list[dict[CellName, Fraction]] = []
    for parts, whole in relations:
        coefficients: dict[CellName, Fraction] = defaultdict(Fraction)
        for name, sign in [(p, 1) for p in parts] + [(whole, -1)]:
            if name in hidden:
                coefficients[name] += sign
        equations.append(coefficients)

    return {
        next(iter(row))
        for row in _reduced_row_echelon(equations)
        if len(row) == 1
    }


def _reduced_row_echelon(
    equations: Iterable[dict[CellName, Fraction]],
) -> list[dict[CellName, Fraction]]:
    """Gauss–Jordan elimination over the rationals, on sparse rows (a national table has
    thousands of unknowns, each in only a few relations).

    Returns the non-zero rows of the reduced row echelon form: each has a pivot with
    coefficient 1 that appears in no other row.
    """
    basis: dict[CellName, dict[CellName, Fraction]] = {}  # pivot → its row
    for equation in equations:
        row = {name: x for name, x in equation.items() if x}
        # The basis rows hold no pivot but their own, so one pass clears every pivot from row.
        for pivot in [name for name in row if name in basis]:
            _subtract(row, row.get(pivot, Fraction(0)), basis[pivot])
        if not row:
            continue
        pivot = min(row)
        lead = row[pivot]
        row = {name: x / lead for name, x in row.items()}
        for other in basis.values():
            if pivot in other:
                _subtract(other, other[pivot], row)
        basis[pivot] = row
    return list(basis.values())


def _subtract(
    row: dict[CellName, Fraction], factor: Fraction, other: dict[CellName, Fraction]
) -> None:
    """row -= factor × other, dropping the zeros so that a row's length counts its unknowns."""
    if not factor:
        return
    for name, x in other.items():
        value = row.get(name, Fraction(0)) - factor * x
        if value:
            row[name] = value
        else:
            row.pop(name, None)
