"""web/state.py: the one LRU the explorer's views share (``AppState.cache``)."""
from __future__ import annotations

import threading

import pytest

pytest.importorskip("fastapi")
from convlens.web.state import LRU, AppState  # noqa: E402


def test_lru_evicts_the_least_recently_used():
    c = LRU(3)
    for k in "abc":
        c.put(k, k.upper())
    assert c.get("a") == "A"              # a is now the most recent: b goes first
    c.put("d", "D")
    assert "b" not in c and [c.get(k) for k in "acd"] == ["A", "C", "D"] and len(c) == 3
    assert c.get("b", 0) == 0 and c.put("e", 5) == 5 and "a" not in c


def test_get_or_make_computes_once_and_remakes_what_valid_refuses():
    c = LRU(4)
    calls, started, release = [], threading.Event(), threading.Event()

    def slow(old):
        calls.append(old)
        started.set()
        release.wait(10)
        return len(calls)
    t = threading.Thread(target=lambda: c.get_or_make("k", slow))
    t.start()
    started.wait(10)                       # the first thread is inside make(): the second waits for it
    got = []
    t2 = threading.Thread(target=lambda: got.append(c.get_or_make("k", slow)))
    t2.start()
    release.set()
    t.join(10)
    t2.join(10)
    assert calls == [None] and got == [1]
    assert c.get_or_make("k", lambda old: old + 10, valid=lambda v: v > 5) == 11   # refused: make(old)
    assert c.get("k") == 11


def test_each_server_has_its_own_named_caches(tmp_path):
    s = AppState(data_dir=tmp_path, orphan_timeout=None)
    try:
        a = s.cache("layers", 2)
        assert s.cache("layers") is a and a.size == 2 and s.cache("projector.maps") is not a
        t = AppState(data_dir=tmp_path / "other", orphan_timeout=None)
        assert t.cache("layers") is not a
        t.close()
    finally:
        s.close()
