"""Host arrays to float32 tensors on the device."""

from __future__ import annotations

import numpy as np
import torch


def float_on_device(array: np.ndarray, device: torch.device | None) -> torch.Tensor:
    """`array` as float32 on `device` (the CPU if None): uint8 crosses as it is (a quarter of
    float32's bytes) and becomes float there; torch has no uint16 on every device, so other
    types become float32 on the host."""
    if array.dtype == np.uint8:
        return torch.from_numpy(np.ascontiguousarray(array)).to(device).float()
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).to(device)
