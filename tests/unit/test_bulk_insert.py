"""SQLite's multi-row statements, shared by the backfill and the legacy import."""

from __future__ import annotations

from convostore.bulk_insert import statement_rows, values_insert


def test_statements_cover_every_row_once_full_ones_first_then_powers_of_two() -> None:
    assert list(statement_rows(0, 1000)) == []
    assert list(statement_rows(2345, 1000)) == [
        (0, 1000),
        (1000, 1000),
        (2000, 256),
        (2256, 64),
        (2320, 16),
        (2336, 8),
        (2344, 1),
    ]
    lengths: set[int] = set()
    for total in range(1, 5000, 13):
        parts = list(statement_rows(total, 1000))
        assert [start for start, _ in parts] == [
            sum(n for _, n in parts[:i]) for i in range(len(parts))
        ]
        assert sum(n for _, n in parts) == total
        lengths.update(n for _, n in parts)
    # The driver caches 128 prepared statements: a table gets at most 11 lengths here.
    assert lengths == {1000, 512, 256, 128, 64, 32, 16, 8, 4, 2, 1}


def test_values_insert_has_a_placeholder_per_value() -> None:
    sql = values_insert("INSERT INTO t (a, b, c)", 3, 2, "RETURNING a")
    assert sql == "INSERT INTO t (a, b, c) VALUES (?, ?, ?), (?, ?, ?) RETURNING a"
    assert values_insert("INSERT INTO t (a)", 1, 1) == "INSERT INTO t (a) VALUES (?)"
