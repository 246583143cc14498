"""Stack sampling in every Python process started with this folder on PYTHONPATH and
STEREOCONV_SAMPLE_DIR set (bench_ray.py --sample): the CLI of a local run, and the Ray actors of
a Ray run, which a driver's own profiler cannot see (Ray's workers inherit the environment of
the process that started the cluster). Python imports `sitecustomize` at start-up; this one
starts a daemon thread that, while the file DIR/on exists, counts every 2 ms the innermost frame
of each thread inside stereoconv's code and that thread's innermost stereoconv frame, and every
2 s rewrites DIR/<pid>.txt with the counts (a Ray actor is killed, not exited, so nothing waits
for the end). For benchmarks only: the product never imports it. The walk over the frames is
bench_video.StackSampler's, written again here because this file runs at the start of every
Python process of the run (Ray's own helpers too) and must import nothing heavy.
"""

import atexit
import collections
import os
import sys
import threading
import time
from pathlib import Path

INTERVAL, WRITE_EVERY = 0.002, 2.0


def _where(frame) -> str:
    if frame is None:
        return "-"
    return f"{Path(frame.f_code.co_filename).name}:{frame.f_lineno} {frame.f_code.co_name}"


def _sample(out: Path, done: threading.Event) -> None:
    counts: collections.Counter = collections.Counter()
    me, written = threading.get_ident(), time.monotonic()
    while not done.is_set():
        if not (out.parent / "on").exists():
            time.sleep(0.5)
            continue
        time.sleep(INTERVAL)
        names = {t.ident: t.name for t in threading.enumerate()}
        for ident, frame in sys._current_frames().items():
            if ident == me:
                continue
            inner, own = frame, None
            while frame is not None:
                if own is None and "stereoconv" in frame.f_code.co_filename:
                    own = frame
                frame = frame.f_back
            if own is not None:  # only threads inside stereoconv's code
                counts[(names.get(ident, "?")[:24], _where(inner), _where(own))] += 1
        if counts and time.monotonic() - written > WRITE_EVERY:
            written = time.monotonic()
            total = sum(counts.values())
            lines = [f"{os.getpid()} {' '.join(sys.argv)[:200]}  samples {total}"]
            lines += [
                f"{n / total:6.1%}  {thread:24s} {inner}  <- {own}"
                for (thread, inner, own), n in counts.most_common(80)
            ]
            tmp = out.with_suffix(".tmp")
            tmp.write_text("\n".join(lines) + "\n")
            tmp.replace(out)


_dir = os.environ.get("STEREOCONV_SAMPLE_DIR")
if _dir:
    Path(_dir).mkdir(parents=True, exist_ok=True)
    _out = Path(_dir) / f"{os.getpid()}.txt"
    _done = threading.Event()
    _thread = threading.Thread(target=_sample, args=(_out, _done), daemon=True, name="sampler")
    _thread.start()
    # ended before the interpreter is: a daemon thread reading the frames of threads being
    # torn down aborts the process ("terminate called without an active exception")
    atexit.register(lambda: (_done.set(), _thread.join()))
