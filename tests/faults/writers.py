"""Writer processes for the experiments: each appends messages and reports every acknowledgement.

A writer prints ``ack <message_id> <monotonic time>`` after each ``add_message`` returned, and
``err <kind>: <message>`` for each error, flushing every line: what a killed writer printed was
acknowledged. CLOCK_MONOTONIC is system-wide on Linux, so times compare across processes.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import ROOT

SCRIPT = r"""
import asyncio, sys, time
from pathlib import Path
from convostore import BotConfig, BotStore, ChannelInfo

url, worker, stop, limit = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
config = BotConfig.model_validate(
    {"name": "writer", "storage": {"url": url, "type": url.split("+")[0].split(":")[0]}},
    strict=False,
)
channels = [ChannelInfo.channel(channel_id=1, name="shared"),
            ChannelInfo.channel(channel_id=100 + worker, name=f"own-{worker}")]

async def main():
    async with BotStore.open(config) as store:
        print("ready", flush=True)
        i = 0
        while not stop.exists() and i < limit:
            i += 1
            mid = worker * 10_000_000 + i
            try:
                await store.add_message(channels[i % 2], user_id=worker + 1, username=f"w{worker}",
                                        role="user", content=f"{worker}:{i}", message_id=mid)
                print("ack", mid, time.monotonic(), flush=True)
            except Exception as exc:
                print("err", f"{type(exc).__name__}: {exc}".replace("\n", " "), flush=True)
                await asyncio.sleep(0.01)

asyncio.run(main())
"""


@dataclass
class Writer:
    proc: subprocess.Popen[str]
    acked: dict[int, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def collect(self, timeout: float = 60) -> None:
        """Wait for the process to end and parse what it printed."""
        out, err = self.proc.communicate(timeout=timeout)
        # A killed writer may have printed part of its last line: only whole lines count.
        for line in out.split("\n")[:-1]:
            parts = line.split(" ", 2)
            if parts[0] == "ack" and len(parts) == 3:
                self.acked[int(parts[1])] = float(parts[2])
            elif parts[0] == "err":
                self.errors.append(line[4:])
        if self.proc.returncode not in (0, -9) and not self.errors:
            self.errors.append(err.strip().splitlines()[-1] if err.strip() else "crashed")


def start(db_url: str, worker: int, stop: Path, *, limit: int = 10**9) -> Writer:
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, db_url, str(worker), str(stop), str(limit)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    return Writer(proc)


def wait_ready(writer: Writer, timeout: float = 60) -> None:
    """Block until the writer has opened its store (its first line)."""
    assert writer.proc.stdout is not None
    line = writer.proc.stdout.readline()
    if line.strip() != "ready":
        writer.proc.kill()
        _out, err = writer.proc.communicate(timeout=timeout)
        raise RuntimeError(f"writer did not start: {line!r} {err[-2000:]}")
