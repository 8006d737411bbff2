"""Running one call from several threads released at the same instant."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


def at_once(count: int, make: Callable[[], T]) -> list[T]:
    """``make()`` from ``count`` threads released together; the results (first error raised).

    Threads stand in for processes sharing ``KOMBIFY_HOME``: the code under test locks with
    ``flock``, which excludes threads of one process as it does processes.
    """
    barrier = threading.Barrier(count)

    def run(_: int) -> T:
        barrier.wait()
        return make()

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))
