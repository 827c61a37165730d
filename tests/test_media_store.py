"""The media store keeps bytes out of history: one copy per content, found again by its key."""

from __future__ import annotations

import asyncio
import hashlib
import json

import pytest

from fakes import media_files
from whatsagent.media.store import FileMediaStore, MediaNotFound, MediaStore, MemoryMediaStore


@pytest.fixture(params=["file", "memory"])
def store(request: pytest.FixtureRequest, tmp_path) -> MediaStore:
    return FileMediaStore(tmp_path / "media") if request.param == "file" else MemoryMediaStore()


async def test_a_stored_medium_comes_back_byte_for_byte(store: MediaStore) -> None:
    data = media_files.image_bytes("JPEG")
    stored = await store.put(data, "image/jpeg", "photo.jpg")

    assert stored.key == stored.sha256 == hashlib.sha256(data).hexdigest()
    assert (stored.mime_type, stored.size, stored.filename) == ("image/jpeg", len(data), "photo.jpg")
    again, info = await store.get(stored.key)
    assert again == data
    assert info == stored
    assert await store.info(stored.key) == stored


async def test_the_same_bytes_are_stored_once_under_one_key(store: MediaStore, tmp_path) -> None:
    data = media_files.voice_note(0.5)
    first = await store.put(data, "audio/ogg", "a.ogg")
    second = await store.put(data, "audio/ogg; codecs=opus", "b.ogg")

    assert second.key == first.key
    assert second.filename == "a.ogg"  # the description from the first put stands
    if isinstance(store, FileMediaStore):
        files = sorted(p.name for p in (tmp_path / "media").rglob("*") if p.is_file())
        assert files == [first.key, f"{first.key}.json"]
    else:
        assert isinstance(store, MemoryMediaStore) and len(store) == 1


async def test_the_store_records_what_the_bytes_are_not_what_was_declared(store: MediaStore) -> None:
    webp = media_files.image_bytes("WEBP")
    stored = await store.put(webp, "image/png")
    assert stored.mime_type == "image/webp"


async def test_a_deleted_medium_is_gone_and_deleting_twice_is_fine(store: MediaStore) -> None:
    stored = await store.put(b"hello", "text/plain")
    await store.delete(stored.key)
    await store.delete(stored.key)
    with pytest.raises(MediaNotFound):
        await store.get(stored.key)


async def test_an_unknown_key_is_reported_as_not_found(store: MediaStore) -> None:
    with pytest.raises(MediaNotFound, match="no medium is stored"):
        await store.get("0" * 64)


async def test_concurrent_puts_of_the_same_bytes_agree(store: MediaStore) -> None:
    data = media_files.image_bytes("PNG")
    results = await asyncio.gather(*(store.put(data, "image/png") for _ in range(8)))
    assert {r.key for r in results} == {results[0].key}
    assert (await store.get(results[0].key))[0] == data


async def test_files_sit_under_a_two_letter_fan_out_with_their_description_beside_them(tmp_path) -> None:
    store = FileMediaStore(tmp_path)
    stored = await store.put(b"%PDF-1.4 not really", "application/pdf", "report.pdf")

    path = store.path(stored.key)
    assert path == tmp_path / stored.key[:2] / stored.key
    assert path.read_bytes() == b"%PDF-1.4 not really"
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta == {
        "key": stored.key,
        "mime_type": "application/pdf",
        "size": 19,
        "sha256": stored.key,
        "filename": "report.pdf",
    }
    assert not list(tmp_path.rglob(".tmp-*")), "no temporary file is left behind"


async def test_a_key_cannot_name_a_path_outside_the_store(tmp_path) -> None:
    store = FileMediaStore(tmp_path / "media")
    for key in ("../../etc/passwd", "ab/../../x", "A" * 64):
        with pytest.raises(MediaNotFound, match="not a media key"):
            await store.get(key)


async def test_bytes_without_their_description_count_as_not_stored(tmp_path) -> None:
    # A crash between writing the bytes and the description leaves an orphan; a later put repairs it.
    store = FileMediaStore(tmp_path)
    stored = await store.put(b"payload", "text/plain")
    store.path(stored.key).with_suffix(".json").unlink()
    with pytest.raises(MediaNotFound):
        await store.get(stored.key)
    assert await store.put(b"payload", "text/plain") == stored
    assert (await store.get(stored.key))[0] == b"payload"


async def test_both_stores_satisfy_the_protocol(tmp_path) -> None:
    assert isinstance(FileMediaStore(tmp_path), MediaStore)
    assert isinstance(MemoryMediaStore(), MediaStore)
