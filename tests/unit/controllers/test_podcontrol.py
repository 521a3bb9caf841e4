"""The pod-creation helpers every workload controller shares."""

from __future__ import annotations

from controllers.podcontrol import create_in_batches


async def test_create_in_batches_slow_starts_and_stops_at_the_first_failed_batch():
    calls: list[int] = []

    async def create(i: int) -> dict:
        calls.append(i)
        if i == 5:
            raise RuntimeError("quota exceeded")
        return {"i": i}

    outcome = await create_in_batches(list(range(20)), create)
    assert calls == list(range(7))  # batches 1, 2, 4: the batch holding item 5 is the last one
    assert [p["i"] for p in outcome.created] == [0, 1, 2, 3, 4, 6]
    assert [str(e) for e in outcome.errors] == ["quota exceeded"] and outcome.skipped == 13
    everything = await create_in_batches(list(range(4)), lambda i: create(i))
    assert len(everything.created) == 4 and not everything.errors and everything.skipped == 0
