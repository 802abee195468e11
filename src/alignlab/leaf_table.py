"""A rich table whose column of leaf paths stays on one line, so a path can be copied whole.

    table = LeafTable(title="per leaf")
    table.add_column("leaf")                        # the first column holds leaf paths
    table.add_column("kept", justify="right")
    console.print(table)

A leaf path has no spaces, so rich, short of room, folds it or cuts it with an ellipsis in an
80-column terminal, and a path copied from the table no longer names the leaf. Laid out for
the width it is printed at, this table keeps rich's layout when everything fits; short of room
it sets its columns one space apart and gives the leaf column its full width first, the other
columns taking what is left (at least their widest value, their headers folding); a leaf path
folds only when even that cannot fit.
"""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console, ConsoleOptions, RenderResult
from rich.table import Table

HEADER_FOLD = 4  # "low_question" folds to "low_", "ques", "tion" when room is short
MIN_LEAF_ROOM = 12


class LeafTable(Table):
    """`rich.table.Table`, laid out so the column of leaf paths (the first, unless
    `leaf_column` says which) stays on one line."""

    def __init__(self, *args: Any, leaf_column: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.leaf_column = leaf_column

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        self._fit_leaf_column(console, options.max_width)
        yield from super().__rich_console__(console, options)

    def _fit_leaf_column(self, console: Console, width: int) -> None:
        if len(self.columns) <= self.leaf_column:
            return
        leaf = self.columns[self.leaf_column]
        others = [c for c in self.columns if c is not leaf]
        # laid out afresh at each width it is printed at, from the style it was made with
        self.__dict__.setdefault("_made_with", (self.box, self.show_edge, self.padding))
        self.box, self.show_edge, self.padding = self.__dict__["_made_with"]
        for column in self.columns:
            column.width, column.no_wrap, column.overflow = None, False, "fold"
        cells = [[_cell_width(console, c) for c in column._cells] for column in [leaf, *others]]
        headers = [_cell_width(console, column.header) for column in [leaf, *others]]
        natural = [max([h, *c]) for h, c in zip(headers, cells)]  # the leaf column's first
        if sum(natural) + self._overhead() <= width:
            leaf.no_wrap = True
            return
        # Short of room: columns one space apart under a rule (as `kubectl get` prints them),
        # since a box and its padding cost three characters a column.
        self.box, self.show_edge, self.padding = box.SIMPLE_HEAD, False, (0, 0)
        # a value is never cut; a header may fold, to no fewer than HEADER_FOLD characters a line
        least = [max([min(h, HEADER_FOLD), *c]) for h, c in zip(headers[1:], cells[1:])]
        room = width - self._overhead() - sum(least)  # for the leaf column
        if room < MIN_LEAF_ROOM:  # too narrow to plan: rich's own layout
            return
        if room < natural[0]:  # the longest path cannot be whole: only the paths longer than `room` fold
            leaf.width = room
            for column, w in zip(others, least):
                column.width = w
            return
        leaf.no_wrap = True
        spare = room - natural[0]
        for i, column in enumerate(others):  # what is left widens the other columns, left to right
            grant = min(spare, natural[i + 1] - least[i])
            column.width, spare = least[i] + grant, spare - grant

    def _overhead(self) -> int:
        """The table's borders and each column's padding, in rich's own accounting."""
        return self._extra_width + sum(self._get_padding_width(i) for i in range(len(self.columns)))

def _cell_width(console: Console, cell: object) -> int:
    if isinstance(cell, str):
        return console.render_str(cell).cell_len
    return console.measure(cell).maximum
