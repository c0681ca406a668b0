"""Salvage after Ctrl-C: every pack that reaches a target is in an index file.

Ctrl-C raises KeyboardInterrupt in the main thread at any bytecode, including the one between
handing work to a thread pool and recording the future. These tests put the interrupt exactly
there and hold the orphaned work until salvage has either waited for it (right) or written its
last index file (wrong: the work would land afterwards, stored but never indexed). Each ordering
is forced by events, so the tests fail every time on a salvage that does not wait.
"""

from __future__ import annotations

import os
import threading

import pytest

from fogvault.backup.saver import BlobSaver, salvage
from fogvault.repo.format import BlobType
from fogvault.repo.packer import PackWriter


def _set_after(event: threading.Event, call):
    def wrapped(*args, **kwargs):
        try:
            return call(*args, **kwargs)
        finally:
            event.set()

    return wrapped


def _set_before(event: threading.Event, call):
    def wrapped(*args, **kwargs):
        event.set()
        return call(*args, **kwargs)

    return wrapped


def test_salvage_waits_for_a_sealing_job_the_saver_never_recorded(make_repo, reopen, monkeypatch):
    repo = make_repo()
    writer = PackWriter(repo)
    saver = BlobSaver(repo, writer)
    salvaging = threading.Event()
    monkeypatch.setattr(saver._pool, "shutdown", _set_before(salvaging, saver._pool.shutdown))
    monkeypatch.setattr(writer, "_write_index", _set_after(salvaging, writer._write_index))
    data = os.urandom(1000)
    blob_id = repo.blob_id(data)
    assert writer.reserve(blob_id)

    def orphan() -> None:  # submitted, then Ctrl-C before BlobSaver recorded it
        salvaging.wait()
        saver._seal_one(BlobType.DATA, blob_id, data)

    saver._pool.submit(orphan)
    salvage(saver, writer)
    saver.close()
    writer.close()
    assert reopen(repo).load_blob(blob_id) == data


def test_salvage_waits_for_an_upload_the_writer_never_recorded(make_repo, reopen, monkeypatch,
                                                                tmp_path):
    repo = make_repo()
    writer = PackWriter(repo)
    salvaging = threading.Event()
    monkeypatch.setattr(writer._pool, "shutdown", _set_before(salvaging, writer._pool.shutdown))
    monkeypatch.setattr(writer, "_write_index", _set_after(salvaging, writer._write_index))
    save_pack = repo.save_pack

    def held_save(pack_id, data) -> None:
        salvaging.wait()
        save_pack(pack_id, data)

    monkeypatch.setattr(repo, "save_pack", held_save)
    submit = writer._pool.submit

    def interrupted_submit(*args, **kwargs):
        monkeypatch.setattr(writer._pool, "submit", submit)
        submit(*args, **kwargs)
        raise KeyboardInterrupt  # before PackWriter recorded the upload

    monkeypatch.setattr(writer._pool, "submit", interrupted_submit)
    data = os.urandom(1000)
    blob_id = repo.blob_id(data)
    assert writer.reserve(blob_id)
    writer.add(BlobType.DATA, blob_id, data, len(data))  # sealing does not matter here
    with pytest.raises(KeyboardInterrupt):
        writer.flush()
    writer.salvage()
    writer.close()
    stored = {p.name for p in (tmp_path / "repo" / "data").rglob("*") if p.is_file()}
    assert stored and stored == {pack_id.hex() for pack_id in reopen(repo).index.pack_ids()}


def test_packs_whose_index_write_was_interrupted_are_indexed_by_salvage(make_repo, reopen,
                                                                        monkeypatch, tmp_path):
    """Ctrl-C during the last index file's write (slow on a remote target): salvage writes
    it again instead of forgetting its packs."""
    repo = make_repo()
    writer = PackWriter(repo)
    save_index = repo.save_index
    calls = []

    def interrupted_once(index) -> None:
        calls.append(index)
        if len(calls) == 1:
            raise KeyboardInterrupt
        save_index(index)

    monkeypatch.setattr(repo, "save_index", interrupted_once)
    data = os.urandom(1000)
    blob_id = repo.blob_id(data)
    assert writer.reserve(blob_id)
    writer.add(BlobType.DATA, blob_id, data, len(data))
    with pytest.raises(KeyboardInterrupt):
        writer.flush()
    writer.salvage()
    writer.close()
    assert len(calls) == 2
    stored = {p.name for p in (tmp_path / "repo" / "data").rglob("*") if p.is_file()}
    assert stored and stored == {pack_id.hex() for pack_id in reopen(repo).index.pack_ids()}
