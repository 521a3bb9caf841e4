"""The crash-loop / image-pull backoff (kubelet.pods.backoff): 10 s doubling to 5 min, reset after 10 quiet minutes."""

from __future__ import annotations

from kubelet.pods.backoff import INITIAL, MAXIMUM, Backoff
from machinery.clock import FakeClock


def make() -> tuple[Backoff, FakeClock]:
    clock = FakeClock()
    return Backoff(clock=clock), clock


def test_a_key_without_failures_has_no_backoff():
    backoff, clock = make()
    assert backoff.delay("uid/app") == 0
    assert backoff.remaining("uid/app", clock.now().timestamp()) == 0


def test_delays_double_from_ten_seconds_up_to_five_minutes():
    backoff, _ = make()
    assert (INITIAL, MAXIMUM) == (10.0, 300.0)
    delays = [backoff.next("uid/app") for _ in range(7)]
    assert delays == [10, 20, 40, 80, 160, 300, 300]
    assert backoff.delay("uid/app") == 300


def test_keys_are_independent():
    backoff, _ = make()
    backoff.next("a/x")
    backoff.next("a/x")
    assert backoff.next("a/y") == 10
    assert backoff.delay("a/x") == 20


def test_remaining_counts_from_when_the_container_finished():
    backoff, clock = make()
    backoff.next("uid/app")  # 10 s in force
    finished = clock.now().timestamp()
    assert backoff.remaining("uid/app", finished) == 10
    clock.advance(4)
    assert backoff.remaining("uid/app", finished) == 6
    clock.advance(6)
    assert backoff.remaining("uid/app", finished) == 0
    clock.advance(60)
    assert backoff.remaining("uid/app", finished) == 0  # never negative


def test_a_container_that_ran_longer_than_the_delay_restarts_at_once():
    backoff, clock = make()
    backoff.next("uid/app")
    backoff.next("uid/app")  # 20 s
    clock.advance(120)  # it ran for two minutes before it exited just now
    assert backoff.remaining("uid/app", clock.now().timestamp() - 120) == 0
    assert backoff.remaining("uid/app", clock.now().timestamp()) == 20


def test_ten_quiet_minutes_start_the_schedule_again():
    backoff, clock = make()
    for _ in range(5):
        backoff.next("uid/app")
    assert backoff.delay("uid/app") == 160
    clock.advance(2 * MAXIMUM - 1)
    assert backoff.delay("uid/app") == 160  # not yet
    clock.advance(2)
    assert backoff.delay("uid/app") == 0
    assert backoff.remaining("uid/app", clock.now().timestamp()) == 0
    assert backoff.next("uid/app") == 10


def test_reset_and_forget_prefix():
    backoff, _ = make()
    for key in ("u1/a", "u1/b", "u2/a"):
        backoff.next(key)
    backoff.reset("u2/a")
    assert backoff.delay("u2/a") == 0
    backoff.reset("never-seen")  # idempotent
    backoff.forget_prefix("u1/")
    assert backoff.delay("u1/a") == backoff.delay("u1/b") == 0


def test_custom_schedule():
    clock = FakeClock()
    backoff = Backoff(initial=1, maximum=4, clock=clock)
    assert [backoff.next("k") for _ in range(4)] == [1, 2, 4, 4]
