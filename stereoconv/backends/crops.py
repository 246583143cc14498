"""Where the UNet works when only some of a frame is painted: boxes of the latent around the
latent pixels to generate, with the context the denoiser needs, on the grid its down-sampling
wants. Pure functions over masks."""

from __future__ import annotations

import torch
import torch.nn.functional as F

# latent pixels of context kept around what is painted (32 image pixels at the VAE's 8)
CONTEXT = 4
# one box of the whole latent once the boxes would cover this share of it (less work, one call)
WHOLE_SHARE = 0.6

Box = tuple[int, int, int, int]  # y0, y1, x0, x1 in latent pixels, end exclusive


def grow_to_grain(start: int, stop: int, grain: int, size: int) -> tuple[int, int]:
    """[start, stop) widened about its centre to a multiple of `grain` (at most `size`),
    shifted back inside [0, size)."""
    length = min(size, -(-(stop - start) // grain) * grain)
    start = max(0, min(start - (length - (stop - start)) // 2, size - length))
    return start, start + length


def overlaps(a: Box, b: Box) -> bool:
    return a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]


def union(a: Box, b: Box) -> Box:
    return min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3])


def paint_boxes(paint: torch.Tensor, grain: int, context: int = CONTEXT) -> list[Box]:
    """Boxes covering every set pixel of `paint` (h, w), each with `context` pixels around it,
    sides multiples of `grain` where the latent allows, none overlapping; the whole latent as
    one box when the boxes would cover WHOLE_SHARE of it or more."""
    from scipy import ndimage

    h, w = paint.shape
    if not paint.any():
        return []
    grown = F.max_pool2d(paint[None, None].float(), 2 * context + 1, 1, context)[0, 0] > 0
    labels, _ = ndimage.label(grown.cpu().numpy())
    boxes = [
        (*grow_to_grain(ys.start, ys.stop, grain, h), *grow_to_grain(xs.start, xs.stop, grain, w))
        for ys, xs in ndimage.find_objects(labels)
    ]
    merged = True
    while merged:  # boxes grown to the grain may overlap: merge until none does
        merged = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                if overlaps(boxes[i], boxes[j]):
                    a = union(boxes[i], boxes.pop(j))
                    y0, y1 = grow_to_grain(a[0], a[1], grain, h)
                    x0, x1 = grow_to_grain(a[2], a[3], grain, w)
                    boxes[i] = union(a, (y0, y1, x0, x1))
                    merged = True
                    break
            if merged:
                break
    if sum((b[1] - b[0]) * (b[3] - b[2]) for b in boxes) >= WHOLE_SHARE * h * w:
        return [(0, h, 0, w)]
    return sorted(boxes)


def same_size_groups(boxes: list[Box], size: int) -> list[list[Box]]:
    """Boxes of equal size together (one UNet batch each), at most `size` a group, in order."""
    by_size: dict[tuple[int, int], list[Box]] = {}
    for box in boxes:
        by_size.setdefault((box[1] - box[0], box[3] - box[2]), []).append(box)
    return [group[i : i + size] for group in by_size.values() for i in range(0, len(group), size)]
