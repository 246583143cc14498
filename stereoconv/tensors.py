"""Host arrays to float32 tensors on the device, and CUDA streams of their own for work done
in several threads at once."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch


def float_on_device(array: np.ndarray, device: torch.device | None) -> torch.Tensor:
    """`array` as float32 on `device` (the CPU if None): uint8 crosses as it is (a quarter of
    float32's bytes) and becomes float there; torch has no uint16 on every device, so other
    types become float32 on the host."""
    if array.dtype == np.uint8:
        return torch.from_numpy(np.ascontiguousarray(array)).to(device).float()
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).to(device)


@contextmanager
def own_stream(device: torch.device) -> Iterator[None]:
    """Run the block's CUDA work on a stream of its own (nothing changes off CUDA). Threads
    sharing the default stream wait on each other: each copy to or from the host waits for
    every kernel the other threads queued. The stream starts after what the caller's stream
    has queued (the models it loaded), and is finished when the block ends."""
    if device.type != "cuda":
        yield
        return
    stream = torch.cuda.Stream(device)
    stream.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(stream):
        yield
    stream.synchronize()
