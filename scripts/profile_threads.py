"""Where a `stereoconv` command's CPU time goes, thread by thread, and whether its threads wait
for the GIL: runs the CLI in this process and prints its wall time, the CPU seconds of each kind
of thread (read from /proc, Linux only) and the wake-up delay of a probe thread that sleeps 1 ms
at a time (a contended GIL shows as delays of milliseconds).

    python scripts/profile_threads.py [--at-once N] video in.mp4 out.mp4 --backend warp ...

--at-once N: convert N chunks at once instead of the product's choice (runner.local).
"""

from __future__ import annotations

import collections
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_video import run_cli  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(tid: int) -> float | None:
    """User + system CPU seconds of thread `tid` of this process; None once it has ended."""
    try:
        with open(f"/proc/self/task/{tid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICK


class ThreadCpu:
    """Samples every thread's CPU time, remembering the Python name of those that have one
    (threads that native libraries start, such as x264's, count as "native")."""

    def __init__(self) -> None:
        self.names: dict[int, str] = {}
        self.seconds: dict[int, float] = {}

    def sample(self) -> None:
        for thread in threading.enumerate():
            if thread.native_id:
                self.names[thread.native_id] = thread.name
        for tid in map(int, os.listdir("/proc/self/task")):
            seconds = cpu_seconds(tid)
            if seconds is not None:
                self.seconds[tid] = seconds

    def by_kind(self) -> dict[str, float]:
        kinds: dict[str, float] = collections.defaultdict(float)
        for tid, seconds in self.seconds.items():
            name = self.names.get(tid, "native")
            kinds[name.split("_")[0]] += seconds  # pool threads: "stereoconv-chunk_3"
        return dict(sorted(kinds.items(), key=lambda kv: -kv[1]))


def main() -> None:
    args = sys.argv[1:]
    if args[:1] == ["--at-once"]:
        import stereoconv.runner.local as local

        at_once = int(args[1])
        local.chunks_at_once = lambda converter, photos=False, chunks=None: at_once
        args = args[2:]
    cpu, delays, stop = ThreadCpu(), [], threading.Event()

    def sampler() -> None:
        while not stop.wait(0.2):
            cpu.sample()

    def gil_probe() -> None:
        while not stop.is_set():
            start = time.perf_counter()
            time.sleep(0.001)
            delays.append(time.perf_counter() - start - 0.001)

    helpers = [threading.Thread(target=f, daemon=True) for f in (sampler, gil_probe)]
    for helper in helpers:
        helper.start()
    cpu_start = time.process_time()
    wall = run_cli(args)
    process = time.process_time() - cpu_start
    stop.set()
    for helper in helpers:
        helper.join()
    delays.sort()
    ms = lambda q: 1e3 * delays[min(len(delays) - 1, int(len(delays) * q))]  # noqa: E731
    print(f"wall {wall:.2f} s, process CPU {process:.1f} s ({process / wall:.1f} cores)")
    print("CPU seconds by thread:", {k: round(v, 1) for k, v in cpu.by_kind().items()})
    print(
        f"GIL probe wake-up delay: mean {1e3 * sum(delays) / len(delays):.2f} ms, "
        f"p50 {ms(0.5):.2f}, p90 {ms(0.9):.2f}, p99 {ms(0.99):.2f} ms ({len(delays)} samples)"
    )


if __name__ == "__main__":
    main()
