"""Where media bytes live, so that history and outbox rows only ever hold a key.

A medium is stored once per content (the key is its SHA-256), whoever sent it and however often.
`FileMediaStore` keeps files on disk; `MemoryMediaStore` is the same seam in memory, for tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from whatsagent.errors import WhatsAgentError
from whatsagent.media.sniff import resolve_mime

_KEY = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class StoredMedia:
    """What the store knows about a medium. `key` is what the rest of whatsagent keeps.

    `mime_type` is the type the bytes really have (sniffed), which may differ from the one declared
    when they were put. `filename` is a display hint from the first `put` of these bytes.
    """

    key: str
    mime_type: str
    size: int
    sha256: str
    filename: str | None = None


class MediaNotFound(WhatsAgentError, LookupError):
    """No medium is stored under this key: it was never stored, or it was deleted."""


@runtime_checkable
class MediaStore(Protocol):
    """Media bytes by key. Putting the same bytes twice returns the same key and stores them once."""

    async def put(self, data: bytes, mime_type: str, filename: str | None = None) -> StoredMedia: ...

    async def get(self, key: str) -> tuple[bytes, StoredMedia]:
        """The bytes and description stored under `key`; raises `MediaNotFound`."""
        ...

    async def info(self, key: str) -> StoredMedia:
        """The description stored under `key`, without reading the bytes; raises `MediaNotFound`."""
        ...

    async def delete(self, key: str) -> None:
        """Forget `key`. Deleting a key that is not stored is not an error."""
        ...


def describe(data: bytes, mime_type: str, filename: str | None = None) -> StoredMedia:
    """The `StoredMedia` that `data` would be stored as."""
    digest = hashlib.sha256(data).hexdigest()
    return StoredMedia(
        key=digest,
        mime_type=resolve_mime(data, mime_type),
        size=len(data),
        sha256=digest,
        filename=filename,
    )


class FileMediaStore:
    """Media as files under `root`: ``<root>/<key[:2]>/<key>`` with ``<key>.json`` beside it.

    Writes go to a temporary file in the same directory, are flushed to disk, then renamed into place,
    so a reader never sees half a file and a crash leaves either the old state or the new. The JSON is
    written last: a medium exists once its description does.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        """The file holding `key`'s bytes (for streaming an upload or serving a download)."""
        _validate(key)
        return self.root / key[:2] / key

    def _meta_path(self, key: str) -> Path:
        return self.path(key).with_suffix(".json")

    async def put(self, data: bytes, mime_type: str, filename: str | None = None) -> StoredMedia:
        return await asyncio.to_thread(self._put, data, mime_type, filename)

    async def get(self, key: str) -> tuple[bytes, StoredMedia]:
        return await asyncio.to_thread(self._get, key)

    async def info(self, key: str) -> StoredMedia:
        return await asyncio.to_thread(self._info, key)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._delete, key)

    async def prune(self, cutoff: float) -> int:
        """Delete media last stored before `cutoff` (epoch seconds, by their description's mtime)."""
        return await asyncio.to_thread(self._prune, cutoff)

    def _prune(self, cutoff: float) -> int:
        deleted = 0
        if not self.root.is_dir():
            return 0
        for meta in self.root.glob("??/*.json"):
            key = meta.stem
            with contextlib.suppress(FileNotFoundError, MediaNotFound):
                if _KEY.match(key) and meta.stat().st_mtime < cutoff:
                    self._delete(key)
                    deleted += 1
        return deleted

    def _put(self, data: bytes, mime_type: str, filename: str | None) -> StoredMedia:
        stored = describe(data, mime_type, filename)
        meta_path = self._meta_path(stored.key)
        with contextlib.suppress(MediaNotFound):
            existing = self._info(stored.key)
            if self.path(stored.key).stat().st_size == existing.size:
                os.utime(meta_path)  # stored again: kept as long as a new one (see `prune`)
                return existing
        _private_directory(meta_path.parent, self.root)
        _write_atomically(self.path(stored.key), data)
        _write_atomically(meta_path, json.dumps(asdict(stored)).encode())
        _sync_directory(meta_path.parent)
        return stored

    def _info(self, key: str) -> StoredMedia:
        try:
            raw = self._meta_path(key).read_bytes()
        except FileNotFoundError:
            raise MediaNotFound(f"no medium is stored under key {key!r} in {self.root}") from None
        return StoredMedia(**json.loads(raw))

    def _get(self, key: str) -> tuple[bytes, StoredMedia]:
        stored = self._info(key)
        try:
            data = self.path(key).read_bytes()
        except FileNotFoundError:
            raise MediaNotFound(f"the bytes of {key!r} are missing from {self.root}") from None
        return data, stored

    def _delete(self, key: str) -> None:
        # The description goes first, so a half-done delete reads as "not stored".
        for path in (self._meta_path(key), self.path(key)):
            path.unlink(missing_ok=True)


class MemoryMediaStore:
    """The same seam in memory: for tests, and for a process that needs nothing to outlive it."""

    def __init__(self) -> None:
        self._items: dict[str, tuple[bytes, StoredMedia]] = {}

    async def put(self, data: bytes, mime_type: str, filename: str | None = None) -> StoredMedia:
        stored = describe(data, mime_type, filename)
        return self._items.setdefault(stored.key, (bytes(data), stored))[1]

    async def get(self, key: str) -> tuple[bytes, StoredMedia]:
        try:
            return self._items[key]
        except KeyError:
            raise MediaNotFound(f"no medium is stored under key {key!r}") from None

    async def info(self, key: str) -> StoredMedia:
        return (await self.get(key))[1]

    async def delete(self, key: str) -> None:
        self._items.pop(key, None)

    def __len__(self) -> int:
        return len(self._items)


def _validate(key: str) -> None:
    # Keys come back from the database; never let one name a path outside the store.
    if not _KEY.match(key):
        raise MediaNotFound(f"{key!r} is not a media key (64 lowercase hex digits)")


def _private_directory(path: Path, root: Path) -> None:
    """`path` (under `root`) made, and it and `root` readable by this user only (0700), whatever the
    umask: media are what users sent."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    for directory in (root, path):
        if os.name == "posix" and directory.stat().st_mode & 0o077:
            with contextlib.suppress(PermissionError):
                directory.chmod(0o700)


def _sync_directory(path: Path) -> None:
    # The renames are durable only once the directory entry is; the key goes into a history row next.
    if os.name != "posix":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomically(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
