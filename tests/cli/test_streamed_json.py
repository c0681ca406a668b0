"""Listings in --json mode are written as they are produced, and read exactly as json.dumps
would have written the whole document."""

from __future__ import annotations

import io
import json
import sys

import pytest

from fogvault.cli.common import Deferred, GlobalOptions, Printer, lazy_list


def _document(lazy: bool, counted: list[int]) -> dict:
    wrap = lazy_list if lazy else list

    def items(n: int):
        for i in range(n):
            counted.append(i)
            yield {"n": i, "path": f"/p/{i}", "tags": wrap(iter(["a", str(i)]))}

    return {
        "from": "abc", "empty": wrap(iter([])),
        "items": wrap(items(5)), "nested": wrap(iter([wrap(iter([])), wrap(iter([1, 2]))])),
        "total": Deferred(lambda: len(counted)) if lazy else 5,
    }


@pytest.mark.parametrize("quiet", [False, True])
def test_a_streamed_document_reads_as_json_dumps_writes_it(monkeypatch, quiet):
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    Printer(GlobalOptions(json=True, quiet=quiet)).json_streamed(_document(True, []))
    expected = json.dumps(_document(False, []), indent=None if quiet else 2, default=str)
    assert out.getvalue() == expected + "\n"


def test_items_are_written_before_the_last_is_produced(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    written_at: list[str] = []

    def items():
        for i in range(3000):
            written_at.append(out.getvalue())
            yield {"n": i}

    Printer(GlobalOptions(json=True)).json_streamed({"items": lazy_list(items())})
    # Written in pieces of a few thousand tokens: when item 2500 is produced, the first
    # thousand are on the output already, and the document is never held whole.
    assert '"n": 1000' in written_at[2500] and '"n": 2500' not in written_at[2500]
    assert json.loads(out.getvalue()) == {"items": [{"n": i} for i in range(3000)]}
