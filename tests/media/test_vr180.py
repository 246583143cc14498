"""The vr180 layout: each eye's picture on the front half of a sphere (half-equirectangular,
180 x 180 degrees), side by side, with the name tag and, in MP4, the spherical metadata that
180-degree players read."""

from __future__ import annotations

import math

import av
import numpy as np
import pytest
import torch
from PIL import Image

from stereoconv.cli.main import main
from stereoconv.layout import (
    equirect_180,
    pack,
    packed_size,
    project,
    ray,
    vr180_side,
)
from stereoconv.layouts import layout_of, name_tag
from stereoconv.media.mp4box import read_equi_bounds, read_st3d
from tests.helpers.clips import numbered_frame, write_clip


def test_the_straight_ahead_ray_meets_the_picture_centre():
    direction = ray(torch.tensor(0.0), torch.tensor(0.0))
    assert torch.allclose(direction, torch.tensor([0.0, 0.0, 1.0]))
    u, v, inside = project(direction, 90, 160, 70.0)
    assert (u.item(), v.item(), bool(inside)) == (80.0, 45.0, True)


@pytest.mark.parametrize("hfov", [40.0, 90.0, 120.0])
def test_the_field_of_view_edges_meet_the_picture_edges(hfov):
    half = math.radians(hfov) / 2
    u, _, _ = project(ray(torch.tensor([-half, half]), torch.zeros(2)), 90, 160, hfov)
    assert torch.allclose(u, torch.tensor([0.0, 160.0]), atol=1e-3)
    within = ray(torch.tensor([-half, half]) * 0.999, torch.zeros(2))
    assert project(within, 90, 160, hfov)[2].all()
    beyond = ray(torch.tensor([-half - 0.01, half + 0.01, math.pi / 2]), torch.zeros(3))
    assert not project(beyond, 90, 160, hfov)[2].any()  # outside, and sideways: behind


def test_the_centre_pixel_maps_to_the_centre_and_the_rest_is_black():
    view = torch.rand(1, 3, 90, 160, generator=torch.Generator().manual_seed(0))
    side = vr180_side(160, 90.0)
    out = equirect_180(view, 90.0, side)
    assert out.shape == (1, 3, side, side) and side == 2 * round(math.pi * 80 / 2)
    c = side // 2  # the four pixels around the sphere's centre average the picture's four
    centre = out[..., c - 1 : c + 1, c - 1 : c + 1].mean()
    assert torch.allclose(centre, view[..., 44:46, 79:81].mean(), atol=1e-5)
    # the picture spans 90 of the 180 degrees across: the outer quarters and the poles black
    assert out[..., : side // 4 - 1].abs().max() == 0 and out[..., side * 3 // 4 + 1 :].max() == 0
    assert out[..., :2, :].max() == 0 and out[..., -2:, :].max() == 0
    assert out[..., c, side // 4 + 2 : side * 3 // 4 - 2].min() > 0 or view.min() == 0


def test_pack_and_packed_size_and_name_tag():
    left, right = torch.full((1, 3, 9, 16), 0.2), torch.full((1, 3, 9, 16), 0.8)
    vr180 = layout_of("vr180")
    packed = pack(left, right, vr180, 60.0)
    side = vr180_side(16, 60.0)
    assert packed.shape[-2:] == packed_size(9, 16, vr180, 60.0) == (side, 2 * side)
    c = side // 2
    assert packed[0, 0, c, c].item() == pytest.approx(0.2)  # left eye first
    assert packed[0, 0, c, side + c].item() == pytest.approx(0.8)
    assert name_tag(vr180, "auto") == "_180_LR"


def run(capsys, *argv):
    code = main([str(a) for a in argv] + ["--backend", "warp"])
    return code, capsys.readouterr().err.strip().splitlines()


def test_image_to_a_folder_is_tagged_and_shaped(capsys, tmp_path, tiny_depth):
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (24, 40, 3), np.uint8)).save(photo)
    out = tmp_path / "out"
    out.mkdir()
    code, err = run(
        capsys,
        "image",
        photo,
        out,
        "--layout",
        "vr180",
        "--vr180-hfov",
        "100",
        "--depth-model",
        tiny_depth,
    )
    assert code == 0, err
    written = out / "photo_180_LR.png"
    side = vr180_side(40, 100.0)
    assert Image.open(written).size == (2 * side, side)


def test_video_carries_the_spherical_metadata(capsys, tmp_path, tiny_depth):
    clip = write_clip(tmp_path / "clip.mp4", [numbered_frame(i, 32, 64) for i in range(3)])
    out = tmp_path / "out"
    out.mkdir()
    code, err = run(
        capsys, "video", clip, out, "--layout", "vr180", "--depth-model", tiny_depth, "--quiet"
    )
    assert code == 0, err
    written = out / "clip_180_LR.mp4"
    side = vr180_side(64, 90.0)
    with av.open(str(written)) as c:
        stream = c.streams.video[0]
        assert (stream.width, stream.height) == (2 * side, side)
    assert read_st3d(written) == 2  # left-right
    assert read_equi_bounds(written) == (0, 0, 0x40000000, 0x40000000)  # 180 degrees across
