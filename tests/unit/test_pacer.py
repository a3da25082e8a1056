"""The pacer that holds the data tests to a share of the time (customer360/pipeline/pacer.py)."""

from __future__ import annotations

import pytest

from customer360.pipeline.pacer import Pacer


class FakeTime:
    """A clock that only moves when told to, or when the pacer waits."""

    def __init__(self) -> None:
        self.now = 100.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now


def paced(share: float, hurry_when=None) -> tuple[Pacer, FakeTime]:
    clock = FakeTime()
    pacer = Pacer(share, hurry_when=hurry_when, clock=clock)

    def wait(seconds: float) -> None:
        clock.waits.append(seconds)
        clock.now += seconds

    pacer._wait = wait
    return pacer, clock


def test_each_step_is_followed_by_a_pause_that_keeps_the_work_to_its_share() -> None:
    pacer, clock = paced(0.25)
    for step in (1.0, 0.2, 2.0):
        clock.now += step
        pacer.step_done()
    assert clock.waits == pytest.approx([3.0, 0.6, 6.0])
    assert pacer.slept_s == pytest.approx(9.6)
    # Work 3.2 s of 12.8 s: a quarter.
    assert 3.2 / (clock.now - 100.0) == pytest.approx(0.25)


def test_a_hurried_pacer_no_longer_pauses_and_a_full_share_never_does() -> None:
    pacer, clock = paced(0.5)
    clock.now += 1.0
    pacer.step_done()
    pacer.hurry()
    clock.now += 1.0
    pacer.step_done()
    assert clock.waits == [1.0]
    flat_out, clock = paced(1.0)
    clock.now += 1.0
    flat_out.step_done()
    assert clock.waits == []


def test_a_pacer_hurries_once_someone_waits_for_what_the_work_holds() -> None:
    waiting = []
    pacer, clock = paced(0.5, hurry_when=lambda: bool(waiting))
    clock.now += 1.0
    pacer.step_done()
    waiting.append("a batch needs dbt")
    for _ in range(2):
        clock.now += 1.0
        pacer.step_done()
    waiting.clear()  # and for good: the work holds it until it ends
    clock.now += 1.0
    pacer.step_done()
    assert clock.waits == [1.0]


@pytest.mark.parametrize("share", [0, -0.5, 1.5])
def test_a_share_outside_zero_to_one_is_refused(share: float) -> None:
    with pytest.raises(ValueError, match="share"):
        Pacer(share)
