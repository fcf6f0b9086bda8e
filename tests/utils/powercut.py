"""A power cut for SQLite: the writer dies and the writes it had not fsynced are gone.

The writer runs in a child process (``python -m tests.utils.powercut``) on a SQLite VFS that
wraps the default one (built with ctypes from the SQLite library Python's ``sqlite3`` module is
linked to; no compiler). The VFS passes everything through and, each time SQLite syncs a file
(``xSync``: fsync/fdatasync), copies that file as it is to a *durable* folder: what the storage
holds after a power cut; the writes since are logged next to it. The parent SIGKILLs the child
at some point and "reboots": :func:`reboot` puts every file of the database's folder back as of
its last sync and removes the files never synced (the ``-shm`` index, which SQLite never syncs
and rebuilds). Without a seed none of the unsynced writes survive (the kernel wrote back
nothing by itself); with one, a random part of them does, some torn. A file's directory entry
is taken as durable once the file was synced (SQLite fsyncs the folder of its WAL; the outbox
fsyncs the folder of a new database).

The child prints ``accepted <msg_id>`` after each :meth:`Outbox.put` returns ``queued``, and
``acking <msg_id>...`` before and ``acked`` after each acknowledgement (the rows a sender
delivered), so what the parent reads is at most what was accepted, and it knows which
acknowledgement, if any, the cut interrupted.
"""

from __future__ import annotations

import ctypes
import os
import random
import shutil
import struct
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SQLITE_OK = 0
_PTRS = ctypes.c_void_p


class _Vfs(ctypes.Structure):
    _fields_ = [  # sqlite3_vfs, versions 1-3
        ("iVersion", ctypes.c_int),
        ("szOsFile", ctypes.c_int),
        ("mxPathname", ctypes.c_int),
        ("pNext", ctypes.c_void_p),
        ("zName", ctypes.c_char_p),
        ("pAppData", ctypes.c_void_p),
        ("xOpen", ctypes.c_void_p),
        ("rest", ctypes.c_void_p * 15),  # xDelete ... xNextSystemCall, passed through
    ]


class _IoMethods(ctypes.Structure):
    _fields_ = [  # sqlite3_io_methods, versions 1-3
        ("iVersion", ctypes.c_int),
        ("xClose", ctypes.c_void_p),
        ("xRead", ctypes.c_void_p),
        ("xWrite", ctypes.c_void_p),
        ("xTruncate", ctypes.c_void_p),
        ("xSync", ctypes.c_void_p),
        ("rest", ctypes.c_void_p * 12),  # xFileSize ... xUnfetch, passed through
    ]


_OPEN = ctypes.CFUNCTYPE(ctypes.c_int, _PTRS, _PTRS, _PTRS, ctypes.c_int, _PTRS)
_SYNC = ctypes.CFUNCTYPE(ctypes.c_int, _PTRS, ctypes.c_int)
_WRITE = ctypes.CFUNCTYPE(ctypes.c_int, _PTRS, _PTRS, ctypes.c_int, ctypes.c_int64)
SECTOR = 512


def sqlite_library() -> ctypes.CDLL | None:
    """The SQLite library of Python's ``sqlite3`` module, if its symbols can be reached."""
    import _sqlite3

    lib = ctypes.CDLL(_sqlite3.__file__)  # dlsym also searches the libraries it links to
    try:
        lib.sqlite3_vfs_find.restype = ctypes.c_void_p
    except AttributeError:
        return None  # SQLite linked statically and hidden: the VFS cannot be registered
    return lib


class PowerCutVfs:
    """The default VFS, recording what a power cut would keep. Every successful sync copies the
    file to ``durable``; every write after it is appended to ``durable/<name>.writes`` (offset,
    length, bytes; unbuffered, so a SIGKILL keeps the log), which the next sync empties."""

    def __init__(self, lib: ctypes.CDLL, durable: Path) -> None:
        self.durable = durable
        self._paths: dict[int, Path] = {}  # sqlite3_file address -> its path
        self._logs: dict[Path, int] = {}  # path -> fd of its write log
        self._methods: dict[int, Any] = {}  # original io methods address -> patched copy
        self._real: dict[int, tuple[Any, Any]] = {}  # patched copy -> original xWrite, xSync
        lib.sqlite3_vfs_find.argtypes = [ctypes.c_char_p]
        lib.sqlite3_vfs_register.argtypes = [ctypes.c_void_p, ctypes.c_int]
        base_addr = lib.sqlite3_vfs_find(None)
        base = _Vfs.from_address(base_addr)
        self._base_addr = base_addr
        self._real_open = _OPEN(base.xOpen)
        self._callbacks = (_OPEN(self._open), _WRITE(self._write), _SYNC(self._sync))
        self.vfs = _Vfs()
        ctypes.memmove(ctypes.addressof(self.vfs), base_addr, ctypes.sizeof(_Vfs))
        self.vfs.zName = b"powercut"
        self.vfs.pNext = None
        self.vfs.xOpen = ctypes.cast(self._callbacks[0], ctypes.c_void_p).value
        if lib.sqlite3_vfs_register(ctypes.addressof(self.vfs), 1) != SQLITE_OK:
            raise RuntimeError("sqlite3_vfs_register refused the power-cut VFS")

    def _open(self, vfs: int, name: int | None, file: int, flags: int, out: int | None) -> int:
        rc: int = self._real_open(self._base_addr, name, file, flags, out)
        slot = ctypes.c_void_p.from_address(file)  # sqlite3_file.pMethods
        if rc != SQLITE_OK or not slot.value or not name:
            return rc
        path = Path(ctypes.string_at(name).decode())
        self._paths[file] = path
        if path not in self._logs:
            log = self.durable / f"{path.name}.writes"
            self._logs[path] = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        slot.value = ctypes.addressof(self._patched(slot.value))
        return rc

    def _patched(self, original: int) -> _IoMethods:
        if original not in self._methods:
            methods = _IoMethods()
            ctypes.memmove(ctypes.addressof(methods), original, ctypes.sizeof(_IoMethods))
            real = (_WRITE(methods.xWrite), _SYNC(methods.xSync))
            self._real[ctypes.addressof(methods)] = real
            methods.xWrite = ctypes.cast(self._callbacks[1], ctypes.c_void_p).value
            methods.xSync = ctypes.cast(self._callbacks[2], ctypes.c_void_p).value
            self._methods[original] = methods
        patched: _IoMethods = self._methods[original]
        return patched

    def _originals(self, file: int) -> tuple[Any, Any]:
        methods = ctypes.c_void_p.from_address(file).value
        assert methods is not None
        return self._real[methods]

    def _write(self, file: int, data: int, amount: int, offset: int) -> int:
        rc: int = self._originals(file)[0](file, data, amount, offset)
        path = self._paths.get(file)
        if rc == SQLITE_OK and path is not None:
            record = struct.pack("<qi", offset, amount) + ctypes.string_at(data, amount)
            os.write(self._logs[path], record)
        return rc

    def _sync(self, file: int, flags: int) -> int:
        rc: int = self._originals(file)[1](file, flags)
        path = self._paths.get(file)
        if rc == SQLITE_OK and path is not None and path.exists():
            shutil.copyfile(path, self.durable / path.name)
            os.ftruncate(self._logs[path], 0)
        return rc


def reboot(folder: Path, durable: Path, seed: int | None = None) -> None:
    """What the storage holds after the cut: each file as of its last sync; never synced, gone.
    With ``seed``, the kernel had also written back some of the writes since, in the order
    they were made: 80 % whole, 10 % not at all, 10 % torn (a random half of their 512-byte
    sectors)."""
    rng = random.Random(seed)
    for path in sorted(folder.iterdir()):
        kept = durable / path.name
        if not kept.exists():
            path.unlink()
            continue
        content = bytearray(kept.read_bytes())
        log = durable / f"{path.name}.writes"
        if seed is not None and log.exists():
            for offset, data in _records(log.read_bytes()):
                fate = rng.random()  # most writes reach the card whole, some not, some torn
                for start in range(0, len(data), SECTOR):
                    if fate < 0.8 or (fate < 0.9 and rng.random() < 0.5):
                        piece = data[start : start + SECTOR]
                        at = offset + start
                        content[len(content) : at] = bytes(max(0, at - len(content)))
                        content[at : at + len(piece)] = piece
        path.write_bytes(content)


def _records(log: bytes) -> Iterator[tuple[int, bytes]]:
    """The (offset, bytes) of a write log; a record cut short by the kill is left out."""
    at = 0
    while at + 12 <= len(log):
        offset, amount = struct.unpack_from("<qi", log, at)
        data = log[at + 12 : at + 12 + amount]
        if len(data) < amount:
            return
        yield offset, data
        at += 12 + amount


def main(argv: list[str]) -> None:
    """``folder durable synchronous count``: put ``count`` results, acknowledging 20 of every
    40 as a sender would, then wait to be killed (or be killed on the way)."""
    folder, durable, synchronous, count = Path(argv[0]), Path(argv[1]), argv[2], int(argv[3])
    lib = sqlite_library()
    assert lib is not None
    vfs = PowerCutVfs(lib, durable)
    from edgecascade.shared.mqtt import Outgoing
    from edgecascade.shared.outbox import Outbox

    box = Outbox(folder / "outbox.db", synchronous="full" if synchronous == "full" else "normal")
    for n in range(count):
        msg_id = f"m{n:05d}"
        outcome = box.put("result", Outgoing(f"t/{n}", msg_id.encode() * 60), msg_id)
        assert outcome == "queued", outcome
        _say("accepted", msg_id)
        if n % 40 == 39:
            rows = box.peek(20)
            _say("acking", *(row.message.payload[:6].decode() for row in rows))
            box.ack(rows)
            _say("acked")
    assert vfs.vfs.zName == b"powercut"  # the VFS (and its callbacks) lived until here
    _say("done")
    time.sleep(600)  # the parent cuts the power here
    os._exit(0)  # no clean shutdown: the callbacks must not outlive their objects


def _say(*words: str) -> None:
    sys.stdout.write(" ".join(words) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1:])
