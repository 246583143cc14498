import numpy as np
import pytest
import torch
from PIL import Image

from stereoconv.disparity.estimate import DepthEstimator
from stereoconv.disparity.maps import load_depth_map, read_pfm
from stereoconv.errors import UserError
from tests.helpers.scenes import write_pfm


def frames(b=2, h=45, w=70, seed=0):
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.integers(0, 256, (b, h, w, 3), dtype=np.uint8))


@pytest.mark.parametrize("family", ["tiny_depth", "tiny_dpt"])
def test_tiny_depth_models_load_through_the_product_loader_and_run_on_cpu(family, request):
    estimator = DepthEstimator(str(request.getfixturevalue(family)), device="cpu")
    batch = frames(h=45, w=70)
    out = estimator(batch)
    assert out.shape == (2, 45, 70) and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    # batched equals one by one
    single = torch.cat([estimator(batch[i : i + 1]) for i in range(2)])
    assert torch.allclose(out, single, atol=1e-5)


def test_depth_anything_input_keeps_the_aspect_ratio(tiny_depth):
    estimator = DepthEstimator(str(tiny_depth), device="cpu")
    assert estimator.input_size(100, 150) == (56, 84)
    assert estimator.input_size(1080, 1920) == (56, 98)
    h, w = estimator.input_size(481, 853)
    assert h % 14 == 0 and w % 14 == 0 and abs(w / h - 853 / 481) < 0.15


def test_preprocessing_matches_the_image_processor(tiny_depth):
    from transformers import AutoImageProcessor

    processor = AutoImageProcessor.from_pretrained(str(tiny_depth))
    estimator = DepthEstimator(str(tiny_depth), device="cpu")
    batch = frames(b=1, h=100, w=150, seed=4)
    ours = estimator.preprocess(batch)
    theirs = processor(images=batch[0].numpy(), return_tensors="pt").pixel_values
    assert ours.shape == theirs.shape
    # PIL and torch bicubic resampling differ by rounding: compare in units of 8-bit steps
    step = 1 / 255 / min(processor.image_std)
    assert (ours - theirs).abs().mean().item() < 3 * step


def test_missing_depth_model_is_one_clear_error(tmp_path):
    with pytest.raises(UserError, match="not a usable model"):
        DepthEstimator(str(tmp_path), device="cpu")


def test_pfm_roundtrip_keeps_unknown_values(tmp_path, motorcycle):
    _, _, disparity = motorcycle
    write_pfm(tmp_path / "d.pfm", disparity)
    back = read_pfm(tmp_path / "d.pfm")
    assert np.array_equal(np.isfinite(back), np.isfinite(disparity))
    assert np.array_equal(back[np.isfinite(back)], disparity[np.isfinite(disparity)])


def test_depth_files_png16_npy_pfm(tmp_path):
    values = np.array([[0, 1000, 2000, 0], [500, 500, 500, 500]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "d16.png")
    out = load_depth_map(tmp_path / "d16.png", "disparity-px", 2, 4)
    # measured disparity: zeros are unknown, filled from the background side (smaller
    # disparity), never kept as 0
    assert out[0].tolist() == [[1000, 1000, 2000, 2000], [500, 500, 500, 500]]
    # a relative map (near = bright): black is the far plane, a value like any other
    out = load_depth_map(tmp_path / "d16.png", "relative-disparity", 2, 4)
    assert out[0].tolist() == [[0, 1000, 2000, 0], [500, 500, 500, 500]]

    arr = np.array([[4.0, np.nan, 8.0]], dtype=np.float32)
    np.save(tmp_path / "d.npy", arr)
    assert load_depth_map(tmp_path / "d.npy", "disparity-px", 1, 3)[0].tolist() == [[4, 4, 8]]

    depth = np.array([[1.0, 2.0, 4.0]], dtype=np.float32)
    np.save(tmp_path / "z.npy", depth)
    assert load_depth_map(tmp_path / "z.npy", "depth", 1, 3)[0].tolist() == [[1.0, 0.5, 0.25]]


def test_pixel_disparity_map_of_another_size_is_rescaled_with_the_image(tmp_path):
    np.save(tmp_path / "d.npy", np.full((10, 20), 6.0, dtype=np.float32))
    out = load_depth_map(tmp_path / "d.npy", "disparity-px", 20, 40)
    assert out.shape == (1, 20, 40)
    assert torch.allclose(out, torch.full_like(out, 12.0))  # twice the width, twice the shift


def test_unreadable_depth_maps_are_user_errors(tmp_path):
    (tmp_path / "bad.png").write_text("not a png")
    with pytest.raises(UserError, match="cannot read"):
        load_depth_map(tmp_path / "bad.png", "depth", 4, 4)
    with pytest.raises(UserError, match="not found"):
        load_depth_map(tmp_path / "none.png", "depth", 4, 4)
    (tmp_path / "bad.pfm").write_bytes(b"P6\n1 1\n255\n")
    with pytest.raises(UserError, match="not a PFM"):
        load_depth_map(tmp_path / "bad.pfm", "depth", 4, 4)


@pytest.mark.parametrize("pix_fmt", ["gray", "gray16le", "yuv444p"])
def test_a_depth_videos_frames_give_the_values_rgb_would(tmp_path, pix_fmt):
    """Gray depth videos are read without a colour conversion; what they give is what their
    first RGB channel held (a colour one still goes through RGB)."""
    import av

    from stereoconv.disparity.maps import DepthFrames
    from stereoconv.media.video import probe, to_rgb

    high = pix_fmt == "gray16le"
    rng = np.random.default_rng(3)
    maps = rng.integers(
        0, 65536 if high else 256, (3, 24, 40), dtype=np.uint16 if high else np.uint8
    )
    path = tmp_path / "depth.mkv"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = 40, 24, pix_fmt
        for m in maps:
            fmt = "gray16le" if high else "gray"
            out.mux(
                stream.encode(av.VideoFrame.from_ndarray(m, format=fmt).reformat(format=pix_fmt))
            )
        out.mux(stream.encode())
    got = list(DepthFrames(path, zero_unknown=True).stream(0, 3))
    info = probe(path)
    with av.open(str(path)) as c:
        want = [to_rgb(f, info.high_bit_depth, 0)[..., 0] for f in c.decode(video=0)]
    for (values, known), rgb in zip(got, want, strict=True):
        assert values.dtype == rgb.dtype and np.array_equal(values, rgb)
        assert np.array_equal(known, rgb > 0)
    if pix_fmt != "yuv444p":
        assert np.array_equal(np.stack([v for v, _ in got]), maps)  # lossless, as written


@pytest.mark.parametrize("kind", ["disparity-px", "depth", "relative-disparity"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_a_batch_of_maps_is_each_map_alone(kind, dtype):
    """Maps of one size are converted in one go; a batch of mixed sizes map by map; both as
    depth_from_values gives each map from float values (the path before batching), including a
    map with a row of no known value (filled from its own frame's farthest value)."""
    from stereoconv.disparity.maps import depth_batch, depth_from_values

    rng = np.random.default_rng(4)
    shapes = [(8, 12), (8, 12), (6, 9)]
    maps = [
        rng.integers(0, 40, shape, dtype=dtype) * (257 if dtype == np.uint16 else 1)
        for shape in shapes
    ]
    maps[1][3] = 0  # a row with nothing known
    maps = [(v, v > 0) for v in maps]
    one_by_one = [depth_from_values(v.astype(np.float32), k, kind, 16, 24, 0.5) for v, k in maps]
    cpu = torch.device("cpu")
    assert torch.equal(depth_batch(maps[:2], kind, 16, 24, 0.5, cpu), torch.cat(one_by_one[:2]))
    assert torch.equal(depth_batch(maps, kind, 16, 24, 0.5, cpu), torch.cat(one_by_one))
