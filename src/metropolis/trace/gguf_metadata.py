"""The key-value metadata at the head of a GGUF file, and nothing else.

`gguf.GGUFReader` (llama.cpp's reader) builds a numpy view for every element of every array and every tensor's
info: seconds for a vocabulary of 49,152 strings and as many merges, where a tokenizer needs only those two
lists. This reads the metadata section straight through (the format's own types, from `gguf`) and stops before
the tensors; the file is memory-mapped, so only the pages read are loaded.
"""

from __future__ import annotations

import mmap
import struct
from pathlib import Path
from typing import Any

import numpy as np
from gguf.constants import GGUF_MAGIC, GGUFValueType
from gguf.gguf_reader import GGUFReader

_SCALARS = {kind: struct.Struct("<" + np.dtype(t).char) for kind, t in GGUFReader.gguf_scalar_to_np.items()}
_COUNT = struct.Struct("<Q")
_KIND = struct.Struct("<I")


class _Cursor:
    def __init__(self, data: mmap.mmap) -> None:
        self.data, self.at = data, 0

    def take(self, fmt: struct.Struct) -> Any:
        (value,) = fmt.unpack_from(self.data, self.at)
        self.at += fmt.size
        return value

    def string(self) -> str:
        n = self.take(_COUNT)
        self.at += n
        return self.data[self.at - n : self.at].decode("utf-8")

    def value(self, kind: int) -> Any:
        if kind == GGUFValueType.STRING:
            return self.string()
        if kind == GGUFValueType.ARRAY:
            inner, n = self.take(_KIND), self.take(_COUNT)
            return [self.value(inner) for _ in range(n)]
        return self.take(_SCALARS[GGUFValueType(kind)])


def read_metadata(path: Path) -> dict[str, Any]:
    """Every metadata key of the GGUF file at `path` with its value (arrays as lists)."""
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        cursor = _Cursor(data)
        try:
            if cursor.take(_KIND) != GGUF_MAGIC:
                raise ValueError(f"{path}: not a GGUF file")
            version = cursor.take(_KIND)
            if version < 2:
                raise ValueError(f"{path}: GGUF version {version} is too old (2 or later)")
            cursor.take(_COUNT)  # tensors: not read
            return {cursor.string(): cursor.value(cursor.take(_KIND)) for _ in range(cursor.take(_COUNT))}
        except (struct.error, UnicodeDecodeError) as error:
            raise ValueError(f"{path}: a damaged GGUF header ({error})") from None
