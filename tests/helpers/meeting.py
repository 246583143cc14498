"""A converter whose first views calls must meet: proof that a worker converts several chunks
(or photo batches) at once, whatever the machine's speed."""

from __future__ import annotations

import threading
from pathlib import Path


def meeting_factory(config, device, parties: int, marker: str):
    """A converter whose first `parties` views calls each wait, up to 60 s, until all of them
    have come (a threading.Barrier): they can only meet if they run at once, in threads of one
    process; otherwise the barrier breaks and the chunk fails. Writes `marker` once they met.
    The frames are the converter's own."""
    from stereoconv.converter import StereoConverter

    converter = StereoConverter(config, device)
    real, barrier = converter.views, threading.Barrier(parties, timeout=60)
    lock, calls = threading.Lock(), [0]

    def views(frames, disparity):
        with lock:
            calls[0] += 1
            meets = calls[0] <= parties
        if meets and barrier.wait() == 0:
            Path(marker).write_text(f"{parties} met")
        return real(frames, disparity)

    converter.views = views
    return converter
