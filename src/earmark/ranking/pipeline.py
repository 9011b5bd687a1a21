"""Keep the decoder busy while a rank reads audio and writes transcripts.

:func:`pipelined` runs a chunked rank as three overlapping stages: a reader thread
reads the next chunk's clips while this chunk decodes, and a writer thread scores and
commits the previous chunk's transcripts (one transaction per chunk, so a killed run
loses at most the chunks not yet committed). Reading and writing are mostly file I/O
and SQLite work outside the GIL-heavy decoding loop; before, they ran between decodes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def prefetched(items: Iterable[T], read: Callable[[T], R]) -> Iterator[tuple[T, R]]:
    """``(item, read(item))`` for each item, the next one read in a thread meanwhile."""
    with ThreadPoolExecutor(1, thread_name_prefix="earmark-reader") as pool:
        it = iter(items)
        ahead: tuple[T, Future] | None = None
        for item in it:
            job = (item, pool.submit(read, item))
            if ahead is not None:
                yield ahead[0], ahead[1].result()
            ahead = job
        if ahead is not None:
            yield ahead[0], ahead[1].result()


class Writer:
    """Runs writes one at a time, in order, in a thread; at most one waits behind the running one.

    Use as a context manager: leaving it waits for every write, and an exception a
    write raised is raised there (or at the next :meth:`submit`).
    """

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="earmark-writer")
        self._last: Future | None = None

    def submit(self, write: Callable[..., Any], *args: Any) -> None:
        if self._last is not None:
            self._last.result()  # bounds memory to one chunk in flight; raises its error
        self._last = self._pool.submit(write, *args)

    def __enter__(self) -> "Writer":
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._last is not None and exc[0] is None:
                self._last.result()
        finally:
            self._pool.shutdown(wait=True)
