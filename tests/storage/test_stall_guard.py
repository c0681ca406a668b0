"""The S3 stall guard gives a request up even when the request swallows its cancellation.

A cancellation that meets aiohttp's own timeout can come out as a TimeoutError (through
async-timeout), which botocore retries on a new connection: on a silent server that attempt
waited out botocore's read timeout. The guard cancels again each second; a request that
swallows every cancellation is left to end on its own. These requests are coroutines that
swallow a given number of cancellations, with no server: the guard only sees a coroutine.
"""

from __future__ import annotations

import asyncio

import pytest

from fogvault.storage.fsspec_store import CANCEL_TRIES, RequestStalled, _unless_stalled

LIMIT = 0.2  # seconds without progress before the request is given up


class Stubborn:
    """A request that never answers and swallows its first ``swallow`` cancellations."""

    def __init__(self, swallow: int) -> None:
        self.swallow, self.cancellations = swallow, 0

    async def __call__(self) -> None:
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                self.cancellations += 1
                if self.cancellations > self.swallow:
                    raise


async def guarded(request: Stubborn) -> BaseException | None:
    try:  # wait_for's bound fails a test that hangs; it is not a synchronisation
        await asyncio.wait_for(_unless_stalled(request, lambda: 0, lambda: LIMIT), 60)
    except RequestStalled as exc:
        return exc
    return None


@pytest.mark.parametrize("swallow", [0, 1, 3])
def test_a_stalled_request_is_cancelled_until_it_ends(swallow: int) -> None:
    request = Stubborn(swallow)
    assert isinstance(asyncio.run(guarded(request)), RequestStalled)
    assert request.cancellations == swallow + 1  # it ended at the first it did not swallow


def test_a_request_that_swallows_every_cancellation_is_left_behind() -> None:
    """After CANCEL_TRIES cancellations the guard gives up waiting and fails the request; the
    request is left on the loop (here it ends at asyncio.run's own cancellation)."""
    request = Stubborn(CANCEL_TRIES)

    async def main() -> tuple[BaseException | None, int]:
        failure = await guarded(request)
        return failure, request.cancellations

    failure, cancelled_by_the_guard = asyncio.run(main())
    assert isinstance(failure, RequestStalled)
    assert cancelled_by_the_guard == CANCEL_TRIES
    assert request.cancellations == CANCEL_TRIES + 1  # asyncio.run's, which it did not swallow
