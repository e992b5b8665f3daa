"""Sessions do not split when two processes write to one channel at (nearly) the same instant."""

from __future__ import annotations

import pytest

from tests.faults import race

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(("offset_ms", "rounds"), [(0, 100), (1, 200)])
def test_two_processes_racing_keep_one_session_per_round(
    db_url: str, backend: str, offset_ms: int, rounds: int
) -> None:
    outcome = race.run(db_url, backend, rounds=rounds, offset_ms=offset_ms)
    expected = f"{rounds} sessions for {rounds} rounds, {2 * rounds} messages"
    assert outcome.notes[0] == expected, outcome.notes
    assert (outcome.acknowledged, outcome.lost, outcome.failures) == (2 * rounds, 0, 0), outcome
