"""``convostore copy`` of 1M messages, SQLite -> PostgreSQL, against the old conversion script.

Baseline (same run, same data, same target server): the script docs/scaling.md used before
``convostore copy`` existed: SQLAlchemy Core, ``SELECT`` in id order 5,000 rows at a time and
``executemany`` INSERTs in one transaction, into a database created by ``alembic upgrade``. It
does less than the copy: no resumability (one transaction; an interruption leaves nothing and a
rerun after a success duplicates nothing only because of the unique keys' errors), no snapshot
counts, no schema creation in the timing. The copy's time includes creating the schema. Then a
rerun of the copy over the complete target (everything is upserted again) is timed.

Run: ``.venv/bin/python benchmarks/bench_copy.py`` (~3 min the first time: the file is built);
``--channels 50`` copies 100,000 messages (for a before/after of a change, with the earlier
commit's ``src`` on ``PYTHONPATH``, see benchmarks/README.md).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import _common as common
import _ops_data as data
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

import convostore
from convostore.models import ChatSessionModel, ConversationModel
from convostore.ops.copy import copy_bots


def _new_pg(tag: str) -> tuple[str, str]:
    name = f"convostore_bench_{tag}_{uuid.uuid4().hex[:8]}"
    with common._admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = make_url(common.PG_ADMIN_URL).set(database=name)
    return name, base.set(drivername="postgresql+asyncpg").render_as_string(False)


def _baseline(source: str, target_async: str) -> float:
    """The old script of docs/scaling.md (schema created beforehand, not timed)."""
    common.migrate(target_async)
    target = make_url(target_async).set(drivername="postgresql+psycopg").render_as_string(False)
    src, dst = create_engine(f"sqlite:///{source}"), create_engine(target)
    started = time.perf_counter()
    with src.connect() as s, dst.begin() as d:
        for table in (ChatSessionModel.__table__, ConversationModel.__table__):
            columns = [c for c in table.c if c.name != "id"]
            query = select(*columns).order_by(table.c.id)
            for chunk in s.execution_options(yield_per=5000).execute(query).partitions():
                d.execute(table.insert(), [dict(row._mapping) for row in chunk])
    elapsed = time.perf_counter() - started
    src.dispose()
    dst.dispose()
    return elapsed


def _count(url: str) -> int:
    engine = create_engine(make_url(url).set(drivername="postgresql+psycopg"))
    with engine.connect() as c:
        n = int(c.execute(text("SELECT count(*) FROM conversations")).scalar_one())
    engine.dispose()
    return n


def main() -> None:
    p = common.parser(__doc__ or "")
    p.add_argument("--no-rerun", action="store_true", help="skip timing the second copy")
    p.add_argument(
        "--channels",
        type=int,
        default=data.CHANNELS,
        help=f"channels of 2,000 messages (default {data.CHANNELS}: 1,000,000 messages)",
    )
    args = p.parse_args()
    source = data.sqlite_file(args.channels)
    rows = data.messages(args.channels)
    made: list[str] = []
    try:
        name, target = _new_pg("copy")
        made.append(name)
        started = time.perf_counter()
        [result] = asyncio.run(copy_bots(f"sqlite:///{source}", target, [data.BOT]))
        copy_s = time.perf_counter() - started
        print(f"copy: {copy_s:.1f} s (load average {common.load_average():.1f})", flush=True)
        assert result.ok and result.tables["conversations"].target == rows, result
        rerun_s = float("nan")
        if not args.no_rerun:
            started = time.perf_counter()
            [again] = asyncio.run(copy_bots(f"sqlite:///{source}", target, [data.BOT]))
            rerun_s = time.perf_counter() - started
            print(f"rerun: {rerun_s:.1f} s (load average {common.load_average():.1f})", flush=True)
            assert again.ok and _count(target) == rows

        name, baseline_target = _new_pg("script")
        made.append(name)
        baseline_s = _baseline(str(source), baseline_target)
        print(f"script: {baseline_s:.1f} s (load average {common.load_average():.1f})", flush=True)
        assert _count(baseline_target) == rows
    finally:
        for name in made:
            common.drop_postgres(name)
    table = [
        [
            "convostore copy (schema + rows + counts)",
            f"{copy_s:.1f}",
            f"{rows / copy_s:,.0f}",
            f"{copy_s / baseline_s:.2f}",
        ],
        [
            "convostore copy again (all upserted)",
            f"{rerun_s:.1f}",
            f"{rows / rerun_s:,.0f}",
            f"{rerun_s / baseline_s:.2f}",
        ],
        [
            "old script (Core executemany, 1 txn)",
            f"{baseline_s:.1f}",
            f"{rows / baseline_s:,.0f}",
            "1.00",
        ],
    ]
    print(
        f"\nSQLite -> PostgreSQL, {rows:,} messages, "
        f"{args.channels * data.SESSIONS_PER_CHANNEL:,} sessions"
    )
    print(common.table(["what", "seconds", "messages/s", "ratio to script"], table))
    common.write_results(
        "copy",
        {
            "messages": rows,
            "copy_s": copy_s,
            "rerun_s": rerun_s,
            "baseline_s": baseline_s,
            # Which convostore was timed (a before/after puts an earlier checkout on PYTHONPATH).
            "library": str(Path(convostore.__file__).parent),
        },
    )


if __name__ == "__main__":
    main()
