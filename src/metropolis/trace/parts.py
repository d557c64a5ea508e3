"""One trace table written as numbered part files, so that a run killed at any instant leaves a readable trace.

While a run goes, a table is a folder `<table>/` of `part-00000.parquet`, `part-00001.parquet`, ...; the part
being written is named `.part-NNNNN.parquet.tmp` (pyarrow and pandas skip hidden files) and becomes a part only
when `seal()` closes it (its footer written) and renames it. So after kill -9 the folder holds only whole
parts: `pd.read_parquet("trace/steps")` and `Trace.read` read everything sealed. `finish()` turns the parts
into the one `<table>.parquet` file of a finished trace. A resumed run keeps the parts its last checkpoint
named (`keep_only`) and writes new ones after them. A sealed part survives the death of the process at once
(it is in the OS's page cache); `unsynced()` names what to fsync so it survives the machine's too, which the
checkpointer does off the run's thread.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from metropolis.interrupts import signals_deferred
from metropolis.trace.schema import TABLES


def part_files(folder: Path) -> list[Path]:
    """The sealed parts of a table folder, in order."""
    return sorted(folder.glob("part-*.parquet"))


def read_parts(folder: Path, table: str) -> pa.Table:
    parts = [pq.read_table(p) for p in part_files(folder)]
    if not parts:
        return TABLES[table].empty_table()
    return pa.concat_tables(parts).unify_dictionaries().combine_chunks()


def fsync(path: Path) -> None:
    """Flush a file's (or a folder's entries') data to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class PartWriter:
    """Appends row groups to the open part of one table; `seal()` makes it a part, `finish()` one file.

    With an `executor` (one thread, shared with whoever must act after the parts are in place), the writes
    and the renames run there, in the order they were asked for: encoding and writing Parquet releases the
    GIL, so the run goes on meanwhile. The names `seal()` returns are then those of parts that will be in
    place once the executor has done what was submitted so far; `drain()` waits for that.

    A writer with an executor that saw every row of its table (not a resumed one) also writes the joined
    file as it goes, on the executor, in
    row groups of about `group_rows` (as the recorder's chunks), hidden in the folder until `finish()` renames
    it: joining hundreds of parts at the end would read and write the table once more."""

    def __init__(self, trace_folder: Path, table: str, group_rows: int = 65_536) -> None:
        self.table = table
        self.group_rows = group_rows
        self.file = trace_folder / f"{table}.parquet"
        self.folder = trace_folder / table
        self.folder.mkdir(parents=True, exist_ok=True)
        self.rows = 0
        self._sealed = [p.name for p in part_files(self.folder)]  # kept here: listing the folder at every seal costs
        self._next = len(self._sealed)
        self._writer: pq.ParquetWriter | None = None  # touched only where the work runs (the executor, if any)
        self._open = False  # a part is open (known where seal() is called)
        self._unsynced: list[Path] = []
        self.executor: Executor | None = None
        self._submitted: list[Future[None]] = []
        self._whole = self._next == 0  # every row passes through here: the joined file is written as it goes
        self._group: list[pa.Table] = []  # rows for the joined file's next row group
        self._group_size = 0
        self._joined: pq.ParquetWriter | None = None  # touched only where the work runs
        self._first()

    def _first(self) -> None:
        """An empty first part: the folder reads as an empty table before any checkpoint."""
        if self._next == 0:
            self.write(TABLES[self.table].empty_table())
            self.seal()

    def _name(self, n: int) -> Path:
        return self.folder / f"part-{n:05d}.parquet"

    def _tmp(self) -> Path:
        return self.folder / f".part-{self._next:05d}.parquet.tmp"

    def write(self, batch: pa.Table) -> None:
        self._run(self._write, self._tmp(), batch)
        self._open = True
        self.rows += batch.num_rows
        if self._whole and self.executor is None and batch.num_rows:
            self._whole = False  # written in place, without checkpoints: few parts, joined at the end
        if self._whole:
            self._group.append(batch)
            self._group_size += batch.num_rows
            if self._group_size >= self.group_rows:
                self._join_group()

    def _join_group(self) -> None:
        group, self._group, self._group_size = self._group, [], 0
        self._run(self._join, self._joining(), group)

    def _joining(self) -> Path:
        return self.folder / ".joined.parquet.tmp"

    def seal(self) -> list[str]:
        """Close the open part (if any rows went in) and name it; the names of every sealed part."""
        if self._open:
            self._open = False
            final = self._name(self._next)
            self._run(self._close, self._tmp(), final)
            self._unsynced += [final, self.folder]
            self._sealed.append(final.name)
            self._next += 1
        return list(self._sealed)

    def drain(self) -> None:
        """Wait until every write and seal asked for is done; raises what they raised."""
        submitted, self._submitted = self._submitted, []
        for future in submitted:
            future.result()

    def _join(self, joining: Path, group: list[pa.Table]) -> None:
        if self._joined is None:
            self._joined = pq.ParquetWriter(joining, TABLES[self.table], compression="zstd")
        self._joined.write_table(_joined(group))

    def _run(self, work: Callable[[Path, Any], None], path: Path, arg: Any) -> None:
        if self.executor is None:
            work(path, arg)
        else:
            self._submitted = [f for f in self._submitted if not f.done() or f.exception() is not None]
            self._submitted.append(self.executor.submit(work, path, arg))

    def _write(self, tmp: Path, batch: pa.Table) -> None:
        if self._writer is None:
            self._writer = pq.ParquetWriter(tmp, TABLES[self.table], compression="zstd")
        self._writer.write_table(batch)

    def _close(self, tmp: Path, final: Path) -> None:
        assert self._writer is not None
        self._writer.close()
        self._writer = None
        os.replace(tmp, final)

    def unsynced(self) -> list[Path]:
        """The parts sealed since the last call, and their folder: what to fsync (in this order)."""
        paths, self._unsynced = self._unsynced, []
        return paths

    def keep_only(self, names: list[str]) -> None:
        """A resume: drop the parts written after the last checkpoint (and any half-written one)."""
        self.drain()
        keep = set(names)
        for path in self.folder.iterdir():
            if path.name not in keep:
                path.unlink()
        self._sealed = [p.name for p in part_files(self.folder)]
        self._next = len(self._sealed)
        self._whole, self._group, self._group_size, self._joined = not self._sealed, [], 0, None
        self._first()

    def finish(self) -> None:
        """The run is over: the parts become `<table>.parquet`: the joined file written as the run went, or
        (a resumed run) the parts merged into row groups of about `group_rows`, so memory holds about one row
        group at a time, and a run sealed at many checkpoints ends with the row groups of one that was not.
        Ctrl-C and SIGTERM wait until it is done: a table half joined is a table lost."""
        with signals_deferred():
            self._finish()

    def _finish(self) -> None:
        self.seal()
        if self._whole:
            if self._group or self._joined is None:
                self._join_group()
            self.drain()
            assert self._joined is not None
            self._joined.close()
            fsync(self._joining())
            os.replace(self._joining(), self.file)
            shutil.rmtree(self.folder)
            return
        self.drain()
        self._unsynced = []
        parts = part_files(self.folder)
        full = [p for p in parts if pq.ParquetFile(p).metadata.num_rows > 0]
        parts = full or parts[:1]
        if len(parts) == 1:
            os.replace(parts[0], self.file)
        else:  # merged beside the file, then renamed: a kill midway never leaves half a table file
            joining = self.file.with_name(f".{self.file.name}.joining")
            with pq.ParquetWriter(joining, TABLES[self.table], compression="zstd") as writer:
                group: list[pa.Table] = []
                for part in parts:
                    group.append(pq.read_table(part))
                    if sum(t.num_rows for t in group) >= self.group_rows:
                        writer.write_table(_joined(group))
                        group = []
                if group:
                    writer.write_table(_joined(group))
            fsync(joining)
            os.replace(joining, self.file)
        shutil.rmtree(self.folder)


def _joined(tables: list[pa.Table]) -> pa.Table:
    return pa.concat_tables(tables).unify_dictionaries().combine_chunks()
