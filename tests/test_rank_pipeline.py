"""The reader and writer threads around the decoder in a rank."""

from __future__ import annotations

import threading
import time

import pytest

from earmark.ranking.pipeline import Writer, prefetched


def test_prefetched_reads_ahead_in_order():
    started: list[int] = []

    def read(i):
        started.append(i)
        return i * 10

    seen = []
    for item, value in prefetched(range(5), read):
        seen.append((item, value))
        if item == 0:
            time.sleep(0.05)
            assert 1 in started  # the next item was read while this one was handled
    assert seen == [(i, i * 10) for i in range(5)]
    assert list(prefetched([], read)) == []


def test_prefetched_raises_the_readers_error():
    def read(i):
        if i == 2:
            raise ValueError("bad clip")
        return i

    with pytest.raises(ValueError, match="bad clip"):
        list(prefetched(range(4), read))


def test_writer_runs_in_order_off_the_calling_thread_and_waits_at_exit():
    done, threads = [], set()

    def write(i):
        time.sleep(0.01)
        threads.add(threading.current_thread().name)
        done.append(i)

    with Writer() as w:
        for i in range(5):
            w.submit(write, i)
    assert done == list(range(5))
    assert threads and threading.current_thread().name not in threads


def test_writer_error_reaches_the_caller():
    def fail():
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        with Writer() as w:
            w.submit(fail)
    with pytest.raises(RuntimeError, match="disk full"):
        with Writer() as w:
            w.submit(fail)
            time.sleep(0.05)
            w.submit(lambda: None)  # the next submit raises the earlier failure
