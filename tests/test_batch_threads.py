"""A producer thread's items, settled in a second thread: what happens when the consumer stops."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import aclosing

import pytest

from imgen.batch.threads import Unclaimed, stream_from_thread


def producer_of(first: list[int], then: int, resume: threading.Event) -> Callable[..., None]:
    """Emits `first` at once, waits for `resume` (the consumer stops meanwhile), emits `then`."""

    def produce(emit: Callable[[int], None], stop: threading.Event) -> None:
        for item in first:
            emit(item)
        resume.wait(10)
        emit(then)

    return produce


@pytest.mark.asyncio
async def test_what_was_emitted_before_the_stop_is_settled_and_nothing_after() -> None:
    settled: list[int] = []
    resume = threading.Event()

    def settle(item: int) -> int:
        time.sleep(0.05)  # slower than the producer: items pile up
        settled.append(item)
        return item

    produce = producer_of([0, 1, 2, 3, 4], 99, resume)
    stream = stream_from_thread(produce, settle, buffer=8, name="test", interrupt=resume.set)
    async with aclosing(stream) as items:
        async for first in items:
            assert first == 0
            break

    # The made items were written though nobody took them; the interrupted call's was not.
    assert settled == [0, 1, 2, 3, 4]


@pytest.mark.asyncio
async def test_a_settle_that_fails_stops_the_stream_with_its_error_and_nothing_hangs() -> None:
    resume = threading.Event()

    def settle(item: int) -> int:
        if item == 2:
            raise OSError("No space left on device")
        return item

    produce = producer_of([0, 1, 2, 3], 99, resume)
    stream = stream_from_thread(produce, settle, buffer=8, name="test", interrupt=resume.set)
    received: list[int] = []
    with pytest.raises(OSError, match="No space left"):
        async with aclosing(stream) as items:
            async for item in items:
                received.append(item)

    assert received == [0, 1]
    assert resume.is_set()  # the producer was interrupted, and its thread waited for


def test_unclaimed_values_are_taken_once_in_the_order_they_came() -> None:
    unclaimed = Unclaimed[int, str]()
    for key, value in [(3, "c"), (1, "a"), (2, "b")]:
        unclaimed.put(key, value)

    assert unclaimed.take(1) == "a"
    assert unclaimed.take_all() == ["c", "b"]
    assert unclaimed.take_all() == []
