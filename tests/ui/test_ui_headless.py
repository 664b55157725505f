"""The headless participant screen: continuous ratings sampled from the simulated participant at every tick."""

from __future__ import annotations

import pytest

from cpm_session.clock import VirtualClock
from cpm_session.errors import SessionError
from cpm_session.ui.base import RatingPrompt, continuous_source
from cpm_session.ui.headless import HeadlessUI

PROMPT = RatingPrompt("ts_pre", 1, "How painful is it now?", "no pain", "worst pain", "Confirm", 30.0)


class Participant:
    """A simulated participant whose pain rises 10 points per second after onset, up past the scale."""

    def respond(self, prompt: RatingPrompt) -> tuple[float | None, float]:
        return 42.0, 1.5

    def continuous(self, t_from_onset: float) -> float:
        return 10.0 * t_from_onset


def run(ui: HeadlessUI, clock: VirtualClock, onset: float, ticks: int, dt: float = 0.5) -> list[tuple[float, float]]:
    ui.start_continuous(PROMPT, "ts_pre-1", onset)
    for _ in range(ticks):
        ui.tick()
        ui.tick()  # a second tick at the same instant adds no sample
        clock.sleep(dt)
    return ui.stop_continuous()


def test_samples_follow_the_participants_continuous_rating_once_per_tick() -> None:
    clock = VirtualClock(100.0)
    ui = HeadlessUI(clock)
    ui.responder = Participant().respond  # a bound method: continuous() is found on its participant
    samples = run(ui, clock, onset=99.0, ticks=24)
    assert [t for t, _ in samples] == [1.0 + 0.5 * i for i in range(24)]
    assert [v for _, v in samples] == [min(100.0, 10.0 + 5.0 * i) for i in range(24)]  # clamped to the scale
    assert ui.shown[-1][1:] == ("continuous_heat", PROMPT.question)
    assert ui.stop_continuous() == []  # stopped: nothing more is sampled
    ui.tick()
    assert ui.stop_continuous() == []


def test_without_continuous_the_prompt_answer_is_held_and_without_a_participant_the_minimum() -> None:
    clock = VirtualClock()
    ui = HeadlessUI(clock)
    ui.responder = lambda p: (42.0, 1.5)
    assert {v for _, v in run(ui, clock, 0.0, 5)} == {42.0}
    ui.responder = lambda p: (None, 30.0)  # no answer: the marker stays where it starts
    assert {v for _, v in run(ui, clock, clock.now(), 5)} == {0.0}
    ui.responder = None
    assert {v for _, v in run(ui, clock, clock.now(), 5)} == {0.0}


def test_staff_keys_keep_flowing_and_a_second_start_is_refused() -> None:
    clock = VirtualClock()
    ui = HeadlessUI(clock)
    got: list[str] = []
    ui.key_handler = got.append
    ui.press("p", 1.0)
    ui.start_continuous(PROMPT, "cs-1", 0.0)
    with pytest.raises(SessionError, match=r"\(stimulus cs-1\) is still running"):
        ui.start_continuous(PROMPT, "cs-2", 0.0)
    clock.sleep(1.0)
    ui.tick()
    assert got == ["p"]
    assert len(ui.stop_continuous()) == 1


def test_continuous_source_finds_the_method_on_the_responder_or_its_owner() -> None:
    p = Participant()
    assert continuous_source(p.respond) == p.continuous
    assert continuous_source(p) == p.continuous  # type: ignore[arg-type]
    assert continuous_source(lambda prompt: (1.0, 1.0)) is None
    assert continuous_source(None) is None
