"""RGB to Y'CbCr 4:2:0 on the device (media/yuv.py): the planes swscale would make, and a video
whose colour tags are kept through the whole job."""

import av
import numpy as np
import pytest
import torch

from stereoconv.media.yuv import luma_weights, rgb_to_i420
from tests.helpers.cli import run
from tests.helpers.clips import decode_all, psnr, write_clip


def even(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(image[: image.shape[0] // 2 * 2, : image.shape[1] // 2 * 2])


def i420_to_rgb(i420: np.ndarray, matrix: int, full_range: bool) -> np.ndarray:
    """rgb_to_i420's inverse: (H * 3 // 2, W) uint8 -> (H, W, 3) float RGB in [0, 1], chroma
    repeated over each 2x2 block."""
    h, w = i420.shape[0] * 2 // 3, i420.shape[1]
    flat = i420.reshape(-1).astype(np.float64)
    y = flat[: h * w].reshape(h, w)
    cb = flat[h * w : h * w * 5 // 4].reshape(h // 2, w // 2).repeat(2, 0).repeat(2, 1)
    cr = flat[h * w * 5 // 4 :].reshape(h // 2, w // 2).repeat(2, 0).repeat(2, 1)
    y_scale, y_offset, c_scale = (255.0, 0.0, 255.0) if full_range else (219.0, 16.0, 224.0)
    luma, cb, cr = (y - y_offset) / y_scale, (cb - 128) / c_scale, (cr - 128) / c_scale
    kr, kb = luma_weights(matrix)
    r = luma + 2 * (1 - kr) * cr
    b = luma + 2 * (1 - kb) * cb
    g = (luma - kr * r - kb * b) / (1 - kr - kb)
    return np.stack([r, g, b], -1).clip(0, 1)


def swscale_i420(rgb: np.ndarray, matrix: int, colour_range: int) -> np.ndarray:
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
    frame = frame.reformat(
        format="yuv420p",
        dst_colorspace=matrix if matrix != 2 else None,
        dst_color_range=colour_range or None,
    )
    return frame.to_ndarray()


def device_i420(rgb: np.ndarray, matrix: int, full_range: bool) -> np.ndarray:
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
    return rgb_to_i420(x, matrix, full_range)[0].numpy()


# unspecified (swscale's default, BT.601), BT.709, SMPTE 170M, BT.2020 (non-constant and
# constant luminance: BT.601 for the latter, as before), FCC, SMPTE 240M; limited range
@pytest.mark.parametrize(
    "matrix,colour_range", [(2, 0), (1, 1), (6, 1), (9, 1), (10, 1), (4, 1), (7, 1)]
)
def test_planes_are_swscales_up_to_rounding(motorcycle, matrix, colour_range):
    rgb = even(motorcycle[0])
    ours = device_i420(rgb, matrix, False).astype(int)
    theirs = swscale_i420(rgb, matrix, colour_range).astype(int)
    assert ours.shape == theirs.shape == (rgb.shape[0] * 3 // 2, rgb.shape[1])
    diff = np.abs(ours - theirs)
    assert diff.max() <= 1  # fixed-point rounding: chroma siting and filter are the same
    assert diff.mean() < 0.1


def test_full_range_is_h273s_rounding(motorcycle):
    """Full range: within 1 of swscale, whose chroma truncates where H.273 rounds."""
    rgb = even(motorcycle[0])
    ours, theirs = device_i420(rgb, 1, True).astype(int), swscale_i420(rgb, 1, 2).astype(int)
    assert np.abs(ours - theirs).max() <= 1
    white, red = np.full((2, 2, 3), 255, np.uint8), np.zeros((2, 2, 3), np.uint8)
    red[..., 0] = 255
    assert device_i420(white, 1, True).tolist() == [[255, 255], [255, 255], [128, 128]]
    # BT.709 red: Y' = 0.2126, Cb = -0.2126 / 1.8556 -> 128 - 29.2 = 98.8, rounded to 99
    assert device_i420(red, 1, True)[:, 0].tolist() == [54, 54, 99]


def test_round_trip(motorcycle):
    """Decoded the same way, the planes keep as much of a photo as swscale's."""
    rgb = even(motorcycle[0])
    ours = psnr(i420_to_rgb(device_i420(rgb, 1, False), 1, False) * 255, rgb.astype(float))
    theirs = psnr(i420_to_rgb(swscale_i420(rgb, 1, 1), 1, False) * 255, rgb.astype(float))
    assert ours > 35 and ours > theirs - 0.05, (ours, theirs)


def test_tagged_bt709_video_keeps_its_colours(capsys, tmp_path, tiny_depth):
    """Saturated patches in a BT.709, limited-range clip come out of the warp job as they
    decode from the source: the conversion used the stream's matrix, and the output says so
    (read with BT.601, the red patch would be off by tens of levels)."""
    patches = [(220, 30, 30), (30, 200, 60), (40, 60, 220), (230, 220, 40)]
    frame = np.zeros((64, 128, 3), np.uint8)
    for k, colour in enumerate(patches):
        frame[:, 32 * k : 32 * (k + 1)] = colour
    bt709 = (1, 1, 1, 1)  # primaries, transfer, matrix, limited range
    src = write_clip(tmp_path / "bt709.mp4", [frame] * 3, colour=bt709)
    out = tmp_path / "bt709_sbs.mp4"
    code, _, err = run(capsys, "video", src, out, "--backend", "warp", "--depth-model", tiny_depth)
    assert code == 0, err
    with av.open(str(out)) as container:
        cc = container.streams.video[0].codec_context
        assert (int(cc.colorspace), int(cc.color_range)) == (1, 1)
    before, after = decode_all(src)[0][0].astype(float), decode_all(out)[0][0].astype(float)
    for k in range(len(patches)):
        inner = np.s_[8:56, 32 * k + 8 : 32 * k + 24]
        a, b = before[inner].reshape(-1, 3).mean(0), after[inner].reshape(-1, 3).mean(0)
        assert np.abs(a - b).max() < 2.5, (a, b)


@pytest.mark.parametrize(
    "fmt, shape, dtype",
    [
        ("yuv420p", (96, 128), np.uint8),
        ("yuv420p", (162, 70), np.uint8),  # chroma rows not a whole number of luma rows
        ("rgb24", (37, 51, 3), np.uint8),
        ("rgb48le", (36, 50, 3), np.uint16),
    ],
)
def test_frames_are_filled_as_pyav_fills_them(fmt, shape, dtype):
    """The encoder's own plane copy gives the frame PyAV's from_ndarray gives (its row-by-row
    copy holds the GIL and is about 7x slower)."""
    import av

    from stereoconv.media.encode import frame_from_array

    picture = np.random.default_rng(5).integers(0, np.iinfo(dtype).max + 1, shape, dtype=dtype)
    if picture.ndim == 3:  # as the encoder may get them: a view, not a contiguous array
        picture = np.ascontiguousarray(picture[:, ::-1])[:, ::-1]
    ours, pyav = frame_from_array(picture, fmt), av.VideoFrame.from_ndarray(picture, format=fmt)
    assert (ours.width, ours.height, ours.format.name) == (pyav.width, pyav.height, fmt)
    assert np.array_equal(ours.to_ndarray(), pyav.to_ndarray())
    assert np.array_equal(ours.to_ndarray(), picture)


def test_a_frame_of_the_wrong_type_is_refused_not_wrapped():
    from stereoconv.media.encode import frame_from_array

    with pytest.raises(ValueError, match="rgb24 frames are uint8"):
        frame_from_array(np.full((4, 6, 3), 300, np.int32), "rgb24")  # would wrap to 44
    with pytest.raises(ValueError, match="yuv420p"):
        frame_from_array(np.zeros((7, 4), np.uint8), "yuv420p")  # not H * 3 // 2 rows
