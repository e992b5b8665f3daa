"""The session rule itself (``convostore.sessions``), shared by live writes and the importer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from convostore.sessions import extended, fits_session

T0 = datetime(2024, 1, 8, 14, 30, 0, tzinfo=UTC)
S = timedelta(seconds=1)


@pytest.mark.parametrize(
    ("start", "last", "at", "fits"),
    [
        (T0, T0, T0, True),
        (T0, T0, T0 + 300 * S, True),  # exactly the gap after the last activity
        (T0, T0, T0 + 301 * S, False),
        (T0, T0, T0 - 300 * S, True),  # exactly the gap before the start
        (T0, T0, T0 - 301 * S, False),
        (T0, T0 + 10 * S, T0 + 5 * S, True),  # inside the session
        (T0, T0 + 3500 * S, T0 + 3600 * S, True),  # exactly the timeout
        (T0, T0 + 3500 * S, T0 + 3601 * S, False),
        (T0, T0 + 3500 * S, T0 - 100 * S, True),  # widened span 3600 s
        (T0, T0 + 3500 * S, T0 - 101 * S, False),  # widened span 3601 s
        (T0, T0, T0 - timedelta(milliseconds=1), True),  # the 1 ms race
    ],
)
def test_fits_session(start: datetime, last: datetime, at: datetime, fits: bool) -> None:
    assert fits_session(start, last, at, gap=300, timeout=3600) is fits


def test_extended_keeps_every_message_inside_the_session() -> None:
    assert extended(T0, T0 + 5 * S, T0 - S) == (T0 - S, T0 + 5 * S)
    assert extended(T0, T0 + 5 * S, T0 + 9 * S) == (T0, T0 + 9 * S)
    assert extended(T0, T0 + 5 * S, T0 + 2 * S) == (T0, T0 + 5 * S)
