"""Spatial indexes over agent positions.

The scheduler asks "which agents could be within r of p?" after every commit, so an index must answer in time
proportional to the agents near p, not to N. Library trees (scipy's cKDTree, R-trees) are built once and queried
many times; here every commit moves an agent, so a uniform grid of buckets (O(1) per move) is the right shape.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence

from mypy_extensions import mypyc_attr

Pos = tuple[int, int]
_INF = math.inf


@mypyc_attr(allow_interpreted_subclasses=True)
class SpatialIndex(ABC):
    """Keys (agent ids) at positions; `near` returns a superset of the keys within `radius` of `pos`.

    A base class rather than a Protocol: the scheduler queries it on every commit, and compiled code calls a
    class's methods natively, a protocol's through Python (metropolis/compiled.py)."""

    @abstractmethod
    def add(self, key: int, pos: Pos) -> None: ...

    @abstractmethod
    def move(self, key: int, old: Pos, new: Pos) -> None: ...

    @abstractmethod
    def remove(self, key: int, pos: Pos) -> None: ...

    @abstractmethod
    def near(self, pos: Pos, radius: float) -> Iterable[int]: ...


class GridIndex(SpatialIndex):
    """Uniform grid of square cells; valid for every metric that is never shorter than Euclidean distance.

    Cells are keyed by one integer (`cx * STRIDE + cy`, both shifted by OFFSET so negative coordinates work):
    hashing an int is cheaper than building a tuple, and this sits on the scheduler's hottest path.
    """

    STRIDE = 1 << 24
    OFFSET = 1 << 23
    __slots__ = ("_box", "_cells", "_keys", "cell", "whole")

    def __init__(self, cell: int = 8, whole: int = 64) -> None:
        if cell < 1:
            raise ValueError(f"grid cell size must be >= 1, got {cell}")
        self.cell = cell
        self.whole = whole  # a huge query over at most this many keys returns them all
        self._cells: dict[int, set[int]] = {}
        # Every key, and the bounding box of the occupied cells (x0, x1, y0, y1), each kept until a bucket changes:
        # a huge query that covers the box returns the keys whole instead of visiting every cell. The box is
        # worked out only when asked (a town of more than `whole` keys).
        self._keys: tuple[int, ...] | None = None
        self._box: tuple[int, int, int, int] | None = None

    def _key(self, pos: Pos) -> int:
        return (pos[0] // self.cell + self.OFFSET) * self.STRIDE + pos[1] // self.cell + self.OFFSET

    def add(self, key: int, pos: Pos) -> None:
        limit = self.OFFSET * self.cell
        if not (-limit <= pos[0] < limit and -limit <= pos[1] < limit):
            raise ValueError(f"position {pos} is outside the grid index (|coordinates| < {limit})")
        self._keys = self._box = None
        c = self._key(pos)
        bucket = self._cells.get(c)
        if bucket is None:
            self._cells[c] = {key}
        else:
            bucket.add(key)

    def remove(self, key: int, pos: Pos) -> None:
        self._keys = self._box = None
        c = self._key(pos)
        bucket = self._cells[c]
        bucket.discard(key)
        if not bucket:
            del self._cells[c]

    def move(self, key: int, old: Pos, new: Pos) -> None:
        size = self.cell
        if old[0] // size == new[0] // size and old[1] // size == new[1] // size:
            return
        self.remove(key, old)
        self.add(key, new)

    def near(self, pos: Pos, radius: float) -> Sequence[int]:
        cells = self._cells
        if not cells:
            return ()
        if radius == _INF:
            return self._everything()
        size, offset = self.cell, self.OFFSET
        r = int(radius)
        x, y = pos[0], pos[1]
        x0, x1 = (x - r) // size + offset, (x + r) // size + offset
        y0, y1 = (y - r) // size + offset, (y + r) // size + offset
        if (x1 - x0 + 1) * (y1 - y0 + 1) > len(cells):
            # A huge query (the scheduler's blocking radius or the engine's reach when some agent is far ahead):
            # scanning the occupied cells is cheaper than probing empty ones. Usually it covers every occupied
            # cell (a small town), and the keys kept since the last change are the answer, in the scan's order.
            everything = self._everything()
            if len(everything) <= self.whole:
                # Every key is a superset too, in the scan's order: cheaper than filtering when there are few
                # (a town of 25), since the caller checks distances anyway.
                return everything
            box = self._bounds()
            if x0 <= box[0] and box[1] <= x1 and y0 <= box[2] and box[3] <= y1:
                return everything
            # Else scan. With y clamped to one stride, a cell is in the box exactly when its key lies between the
            # box's corner keys and its y part (the low bits, STRIDE being a power of two) lies in [y0, y1].
            stride = self.STRIDE
            y0, y1 = max(y0, 0), min(y1, stride - 1)
            lo, hi, mask = x0 * stride + y0, x1 * stride + y1, stride - 1
            return [key for c, bucket in cells.items() if lo <= c <= hi and y0 <= c & mask <= y1 for key in bucket]
        out: list[int] = []
        stride = self.STRIDE
        for cx in range(x0, x1 + 1):
            base = cx * stride
            for c in range(base + y0, base + y1 + 1):
                found = cells.get(c)  # compiled, a bound `get` would be called through Python
                if found:
                    out.extend(found)
        return out

    def _everything(self) -> tuple[int, ...]:
        """Every key, in the order a scan of the cells visits them (kept until a bucket changes)."""
        if self._keys is None:
            self._keys = tuple(key for bucket in self._cells.values() for key in bucket)
        return self._keys

    def _bounds(self) -> tuple[int, int, int, int]:
        """The occupied cells' bounding box (x0, x1, y0, y1), in cell keys' units (kept until a bucket changes)."""
        if self._box is None:
            xs = [c // self.STRIDE for c in self._cells]
            ys = [c % self.STRIDE for c in self._cells]
            self._box = min(xs), max(xs), min(ys), max(ys)
        return self._box

    def __len__(self) -> int:
        return sum(len(b) for b in self._cells.values())
