"""The node's own block store: every block it ever connected, kept in arrival order in the datadir.

The kernel's chainstate is rebuilt from this store on start-up and after invalidateblock/reconsiderblock
(the kernel's C API cannot invalidate a block), so this file, not the kernel's databases, is what persists.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

from .codec import sha256d

BLOCKS_FILE = "blocks.dat"
INVALID_FILE = "invalidated.json"


class BlockStore:
    def __init__(self, netdir: Path) -> None:
        self._path = netdir / BLOCKS_FILE
        self._invalid_path = netdir / INVALID_FILE
        self.raw: dict[bytes, bytes] = {}
        self.order: list[bytes] = []
        self.invalidated: set[bytes] = set()
        self._load()
        self._file = self._path.open("ab")

    def _load(self) -> None:
        if self._path.exists():
            data = self._path.read_bytes()
            pos = 0
            while pos + 4 <= len(data):
                (n,) = struct.unpack("<I", data[pos : pos + 4])
                if pos + 4 + n > len(data):
                    break  # a torn final record from a crash: the block was never reported mined
                raw = data[pos + 4 : pos + 4 + n]
                h = sha256d(raw[:80])
                if h not in self.raw:
                    self.raw[h] = raw
                    self.order.append(h)
                pos += 4 + n
            if pos != len(data):
                with self._path.open("r+b") as f:
                    f.truncate(pos)
        if self._invalid_path.exists():
            self.invalidated = {bytes.fromhex(h) for h in json.loads(self._invalid_path.read_text())}

    def add(self, block_hash: bytes, raw: bytes) -> None:
        if block_hash in self.raw:
            return
        self.raw[block_hash] = raw
        self.order.append(block_hash)
        self._file.write(struct.pack("<I", len(raw)) + raw)
        self._file.flush()

    def sync(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())

    def save_invalidated(self) -> None:
        tmp = self._invalid_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(sorted(h.hex() for h in self.invalidated)))
        tmp.replace(self._invalid_path)

    def close(self) -> None:
        self.sync()
        self._file.close()
