"""The outbox file contract: one SQLite database in WAL mode, defined here and nowhere else.

Contract version 1 (README "The producer outbox" says the same):

* ``PRAGMA application_id = 0x45504F42`` ("EPOB") and ``PRAGMA user_version = 1``. A file
  with another application id is not an outbox; a higher version is refused, never rewritten.
* ``PRAGMA journal_mode = WAL``; ``PRAGMA synchronous = FULL`` unless configured (``NORMAL``,
  ``EXTRA``; FULL syncs the WAL at every commit, so a stored record survives power loss).
* One table, ``outbox``; ``seq`` is the send order and the drain order::

      CREATE TABLE outbox (
          seq       INTEGER PRIMARY KEY,  -- send order; drained in this order
          topic     TEXT    NOT NULL,
          key       BLOB,                 -- NULL: no key
          value     BLOB,                 -- NULL: a tombstone
          headers   BLOB    NOT NULL,     -- binary, see below
          size      INTEGER NOT NULL,     -- bytes counted against the byte cap
          stored_at REAL    NOT NULL      -- unix time (seconds) of the write
      )

* ``headers`` holds the record's headers in order, repeats kept, each as: name length
  (2 bytes, big-endian), the name (UTF-8), value length (4 bytes, big-endian, signed; -1 for
  a null value), the value. No headers: an empty blob.
* One process owns the file at a time: an exclusive ``flock`` on the database file itself,
  held while it is open (a producer, or ``pipeline outbox drain``); ``status`` only reads.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import struct
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import quote

from pipeline._errors import OutboxCorruptError, OutboxError, OutboxFileError, OutboxLockedError

__all__ = [
    "APPLICATION_ID",
    "SCHEMA",
    "VERSION",
    "OutboxFile",
    "Row",
    "Summary",
    "Synchronous",
    "decode_headers",
    "encode_headers",
]

APPLICATION_ID = 0x45504F42  # "EPOB": event-pipeline outbox
VERSION = 1
SCHEMA = """CREATE TABLE outbox (
    seq       INTEGER PRIMARY KEY,
    topic     TEXT    NOT NULL,
    key       BLOB,
    value     BLOB,
    headers   BLOB    NOT NULL,
    size      INTEGER NOT NULL,
    stored_at REAL    NOT NULL
)"""
Synchronous = Literal["NORMAL", "FULL", "EXTRA"]
Headers = Sequence[tuple[str, bytes | None]]
_BUSY_TIMEOUT_MS = 5_000
_NAME = struct.Struct(">H")
_VALUE = struct.Struct(">i")


@dataclass(frozen=True, slots=True)
class Row:
    """One stored record."""

    seq: int
    topic: str
    key: bytes | None
    value: bytes | None
    headers: bytes  # encoded: decode_headers() gives the list
    size: int


@dataclass(frozen=True, slots=True)
class Summary:
    """What an outbox holds: records, bytes, the head's age, and records per (topic, key)."""

    records: int
    size_bytes: int
    oldest_stored_at: float | None
    last_seq: int
    keys: dict[tuple[str, bytes], int]


def encode_headers(headers: Headers | None) -> bytes:
    """Headers in the contract's binary layout (module docstring)."""
    if not headers:
        return b""
    parts: list[bytes] = []
    for name, value in headers:
        raw = name.encode()
        parts.append(_NAME.pack(len(raw)))
        parts.append(raw)
        if value is None:
            parts.append(_VALUE.pack(-1))
        else:
            parts.append(_VALUE.pack(len(value)))
            parts.append(value)
    return b"".join(parts)


def decode_headers(data: bytes) -> list[tuple[str, bytes | None]]:
    """The inverse of :func:`encode_headers`."""
    out: list[tuple[str, bytes | None]] = []
    i, end = 0, len(data)
    name_at, value_at = _NAME.unpack_from, _VALUE.unpack_from
    while i < end:
        (length,) = name_at(data, i)
        name = data[i + 2 : i + 2 + length].decode()
        i += 2 + length
        (length,) = value_at(data, i)
        i += 4
        if length < 0:
            out.append((name, None))
        else:
            out.append((name, data[i : i + length]))
            i += length
    return out


class OutboxFile:
    """An open outbox: the SQLite connection (guarded by one lock) and the ownership lock.

    Raises (from :meth:`open`):
        OutboxCorruptError: not an outbox, damaged, or a newer contract version.
        OutboxLockedError: another process owns it (or holds a SQLite write lock too long).
    """

    def __init__(self, path: Path, conn: sqlite3.Connection, lock_fd: int | None) -> None:
        self.path = path
        self._conn = conn
        self._lock_fd = lock_fd
        self.lock = threading.Lock()

    @classmethod
    def open(
        cls, path: str | os.PathLike[str], synchronous: Synchronous = "FULL", *, own: bool = True
    ) -> OutboxFile:
        """Open (creating if missing) the outbox at ``path``; ``own=False`` reads only."""
        file = Path(path)
        if synchronous not in ("NORMAL", "FULL", "EXTRA"):
            raise OutboxError(
                f"outbox synchronous must be NORMAL, FULL or EXTRA, not {synchronous}"
            )
        if not own and not file.exists():
            raise OutboxCorruptError(f"no outbox at {file}", path=str(file))
        lock_fd = _take_lock(file) if own else None
        try:
            conn = _connect(file, synchronous, own)
        except BaseException:
            if lock_fd is not None:
                os.close(lock_fd)
            raise
        return cls(file, conn, lock_fd)

    def insert(
        self, rows: Iterable[tuple[int, str, bytes | None, bytes | None, bytes, int]]
    ) -> None:
        """Append ``(seq, topic, key, value, encoded headers, size)`` rows in one transaction."""
        now = time.time()
        with self.lock, self._guard(), self._conn:
            self._conn.executemany(
                "INSERT INTO outbox (seq, topic, key, value, headers, size, stored_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(*row, now) for row in rows],
            )

    def head(self, limit: int, after: int = -1) -> list[Row]:
        """The first ``limit`` records with ``seq > after``, in drain order."""
        with self.lock, self._guard():
            cursor = self._conn.execute(
                "SELECT seq, topic, key, value, headers, size FROM outbox"
                " WHERE seq > ? ORDER BY seq LIMIT ?",
                (after, limit),
            )
            rows = cursor.fetchall()
        return [Row(*row) for row in rows]

    def delete(self, seqs: Sequence[int]) -> None:
        """Remove acknowledged records, in one transaction (runs of seqs as ranges)."""
        ranges: list[tuple[int, int]] = []
        for seq in sorted(seqs):
            if ranges and ranges[-1][1] == seq - 1:
                ranges[-1] = (ranges[-1][0], seq)
            else:
                ranges.append((seq, seq))
        with self.lock, self._guard(), self._conn:
            self._conn.executemany("DELETE FROM outbox WHERE seq BETWEEN ? AND ?", ranges)

    def oldest_stored_at(self) -> float | None:
        """When the head record (lowest ``seq``) was written, or None when empty."""
        with self.lock, self._guard():
            row = self._conn.execute("SELECT stored_at FROM outbox ORDER BY seq LIMIT 1").fetchone()
        return None if row is None else float(row[0])

    def summary(self) -> Summary:
        """Count what the outbox holds (one scan; for opening and for ``status``)."""
        with self.lock, self._guard():
            records, size, last = self._conn.execute(
                "SELECT count(*), coalesce(sum(size), 0), coalesce(max(seq), 0) FROM outbox"
            ).fetchone()
            keys = self._conn.execute(
                "SELECT topic, key, count(*) FROM outbox WHERE key IS NOT NULL GROUP BY topic, key"
            ).fetchall()
        oldest = self.oldest_stored_at()
        return Summary(records, size, oldest, last, {(t, k): n for t, k, n in keys})

    def topics(self) -> list[tuple[str, int, int]]:
        """``(topic, records, bytes)`` per topic, by topic name."""
        with self.lock, self._guard():
            rows = self._conn.execute(
                "SELECT topic, count(*), sum(size) FROM outbox GROUP BY topic ORDER BY topic"
            ).fetchall()
        return [(str(t), int(n), int(b)) for t, n, b in rows]

    def close(self) -> None:
        """Close the connection (checkpointing the WAL) and release the ownership lock."""
        with self.lock:
            self._conn.close()
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    def _guard(self) -> _Translate:
        return _Translate(self.path)


class _Translate:
    """Turn sqlite3 errors into the pipeline's outbox errors, naming the path."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, typ: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        if isinstance(exc, sqlite3.Error):
            raise _translated(self.path, exc) from exc


def _translated(path: Path, exc: sqlite3.Error) -> OutboxError:
    text = str(exc)
    if "locked" in text or "busy" in text:
        return OutboxLockedError(
            f"outbox {path} is locked by another process: {text}", path=str(path)
        )
    if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError):
        return OutboxCorruptError(
            f"outbox {path} is damaged or not an outbox: {text}", path=str(path)
        )
    return OutboxError(f"outbox {path}: {text}")


def _take_lock(path: Path) -> int:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise OutboxFileError(f"cannot open outbox {path}: {exc.strerror}", path=str(path)) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise OutboxLockedError(
            f"outbox {path} is in use by another process (a producer or `pipeline outbox drain`)",
            path=str(path),
        ) from None
    return fd


def _connect(path: Path, synchronous: Synchronous, own: bool) -> sqlite3.Connection:
    uri = f"file:{quote(str(path))}" + ("" if own else "?mode=ro")  # '?' or '#' in a name
    try:
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
    except sqlite3.Error as exc:
        raise _translated(path, exc) from exc
    try:
        with _Translate(path):
            conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            _check_or_create(conn, path, own)
            if own:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise OutboxError(f"outbox {path}: cannot use WAL mode (got {mode})")
            conn.execute(f"PRAGMA synchronous = {synchronous}")
        conn.isolation_level = "DEFERRED"  # `with conn:` commits or rolls back one transaction
    except BaseException:
        conn.close()
        raise
    return conn


def _check_or_create(conn: sqlite3.Connection, path: Path, own: bool) -> None:
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if app_id == 0 and version == 0 and not tables and own:  # a new, empty file
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(SCHEMA)
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version = {VERSION}")
        conn.execute("COMMIT")
        return
    if app_id != APPLICATION_ID or "outbox" not in tables:
        raise OutboxCorruptError(
            f"{path} is not an event-pipeline outbox (SQLite application_id {app_id:#x})",
            path=str(path),
        )
    if version > VERSION:
        raise OutboxCorruptError(
            f"outbox {path} has contract version {version}; this release reads up to {VERSION}",
            path=str(path),
        )
