"""`stereoconv images` on a photo library built here: formats, metadata, the manifest, errors."""

import hashlib
import io
import json
import sys

import numpy as np
import pillow_heif
import pytest
from PIL import Image, ImageCms, TiffImagePlugin

from stereoconv.cli.convert import FORMAT_CHOICES
from stereoconv.cli.main import main
from stereoconv.converter import StereoConverter
from stereoconv.jobs.library import FORMATS, batched_by
from stereoconv.jobs.manifest import MANIFEST

pillow_heif.register_heif_opener()
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
GOOD = ["rotated.jpg", "phone.heic", "scan.tif", "a/alpha.png", "a/pic.webp", "a/b/grey.png"]
OUTPUTS = ["rotated.jpg", "phone.jpg", "scan.tif", "a/alpha.png", "a/pic.webp", "a/b/grey.png"]


def picture(height, width, seed=0):
    """Smooth colours with some texture: JPEG keeps them close, and every pixel differs."""
    y, x = np.mgrid[0:height, 0:width]
    noise = np.random.default_rng(seed).integers(0, 24, (height, width, 3))
    rgb = np.stack([x * 200 // width, y * 200 // height, (x + y) * 100 // (height + width)], -1)
    return (rgb + noise).astype(np.uint8)


def camera_exif(orientation=1):
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "StereoCam"
    exif.get_ifd(0x8769)[0x9003] = "2024:05:06 07:08:09"  # DateTimeOriginal
    return exif.tobytes()


@pytest.fixture
def library(tmp_path):
    """A tree of mixed formats, one broken file and one that is no photo."""
    root = tmp_path / "photos"
    (root / "a" / "b").mkdir(parents=True)
    # stored 40 wide, 24 high; orientation 6: shown rotated 90 degrees clockwise, 24 x 40
    Image.fromarray(picture(24, 40)).save(
        root / "rotated.jpg", exif=camera_exif(6), icc_profile=SRGB, quality=98
    )
    Image.fromarray(picture(30, 44, 1)).save(root / "phone.heic", exif=camera_exif(), quality=90)
    Image.fromarray(picture(24, 40, 2)).save(root / "scan.tif")
    alpha = np.linspace(0, 255, 40, dtype=np.uint8)[None].repeat(24, 0)
    rgba = np.dstack([picture(24, 40, 3), alpha])
    Image.fromarray(rgba, "RGBA").save(root / "a" / "alpha.png")
    Image.fromarray(picture(24, 40, 4)).save(root / "a" / "pic.webp", quality=95)
    Image.fromarray(picture(24, 40, 5)[..., 0]).save(root / "a" / "b" / "grey.png")
    (root / "broken.jpg").write_bytes(b"\xff\xd8 this is not a photo")
    (root / "notes.txt").write_text("not a photo")
    return root


def run(capsys, tiny_depth, *argv):
    """`stereoconv ARGV` on the CPU with the tiny depth model and, unless named, the warp
    backend (the default preset is the diffusion backend). Returns (exit code, stderr lines)."""
    argv = [str(a) for a in argv] + ["--device", "cpu"]
    if "--backend" not in argv:
        argv += ["--backend", "warp"]
    if "--depth-model" not in argv:
        argv += ["--depth-model", str(tiny_depth)]
    if "--name-tag" not in argv:  # the names as the inputs'; test_stereo_tags_in_names: tags
        argv += ["--name-tag", "none"]
    code = main(argv)
    err = capsys.readouterr().err.splitlines()
    return code, [line for line in err if line.startswith("stereoconv:")]  # less progress bars


def digests(folder):
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def outputs_of(out):
    return {k: v for k, v in digests(out).items() if k != MANIFEST}


def assert_one_line_error(code, err, text):
    assert code != 0
    assert len(err) == 1 and err[0].startswith("stereoconv: error:") and text in err[0], err


def test_every_good_photo_converts_and_the_broken_one_is_reported(
    capsys, tmp_path, library, tiny_depth
):
    before = digests(library)
    out = tmp_path / "out"
    code, err = run(capsys, tiny_depth, "images", library, out, "--skip-errors", "-q")
    assert code == 1
    assert err[-1] == "stereoconv: error: converted 6 photos, 1 failed (listed above)"
    assert [line for line in err if "failed:" in line] == [
        f"stereoconv: failed: cannot read image {library / 'broken.jpg'}: "
        "not an image in a known format, or damaged"
    ]
    assert sorted(outputs_of(out)) == sorted(OUTPUTS)
    assert digests(library) == before  # inputs untouched

    # the EXIF rotation is applied to the pixels, the EXIF says so, the rest of it is kept
    with Image.open(out / "rotated.jpg") as im:
        assert im.size == (48, 40)  # side by side of the upright 24 x 40
        exif = im.getexif()
        assert exif[0x0112] == 1 and exif[0x010F] == "StereoCam"
        assert exif.get_ifd(0x8769)[0x9003] == "2024:05:06 07:08:09"
        assert im.info["icc_profile"] == SRGB
        left = np.asarray(im)[:, :22].astype(int)  # JPEG blurs colour over the seam at 24
    with Image.open(library / "rotated.jpg") as im:
        stored = np.asarray(im).astype(int)  # as stored, not rotated
    assert np.abs(left - np.rot90(stored, k=-1)[:, :22]).mean() < 3  # clockwise, as 6 says
    assert np.abs(left - np.rot90(stored, k=1)[:, :22]).mean() > 20

    with Image.open(out / "phone.jpg") as im:  # HEIC becomes JPEG, its EXIF kept
        assert im.format == "JPEG" and im.size == (88, 30)
        assert im.getexif()[0x010F] == "StereoCam"
    with Image.open(out / "a" / "b" / "grey.png") as im:  # grey stays grey (warp keeps it grey)
        assert im.mode == "L" and im.size == (80, 24)
        grey = np.asarray(Image.open(library / "a" / "b" / "grey.png"))
        assert np.array_equal(np.asarray(im)[:, :40], grey)
    with Image.open(out / "a" / "alpha.png") as im:  # the views are opaque
        assert im.mode == "RGB" and im.size == (80, 24)
        rgba = np.asarray(Image.open(library / "a" / "alpha.png"))
        assert np.array_equal(np.asarray(im)[:, :40], rgba[..., :3])
    for name, fmt in (("scan.tif", "TIFF"), ("a/pic.webp", "WEBP")):
        with Image.open(out / name) as im:
            assert im.format == fmt and im.size == (80, 24)

    manifest = json.loads((out / MANIFEST).read_text())
    assert sorted(manifest["outputs"]) == sorted(OUTPUTS)
    record = manifest["outputs"]["phone.jpg"]
    assert record["input"] == "phone.heic"
    assert record["input_sha256"] == before["phone.heic"]
    assert record["output_sha256"] == hashlib.sha256((out / "phone.jpg").read_bytes()).hexdigest()
    assert manifest["settings"][record["settings"]]["divergence"] == 3.0


def test_a_second_run_converts_nothing_and_other_settings_touch_nothing(
    capsys, tmp_path, library, tiny_depth
):
    out = tmp_path / "out"
    assert run(capsys, tiny_depth, "images", library, out, "--skip-errors")[0] == 1
    first = digests(out)
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*")}

    code, err = run(capsys, tiny_depth, "images", library, out, "--skip-errors")
    assert code == 1  # the broken file still fails
    # the summary is said once, in the error line
    assert err[-1] == (
        "stereoconv: error: nothing converted: 6 photos up to date, 1 failed (listed above)"
    )
    assert not [line for line in err if "nothing converted" in line and "error" not in line]
    assert digests(out) == first
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == mtimes

    # --batch-size changes speed, not pictures: still up to date
    library.joinpath("broken.jpg").unlink()
    code, err = run(capsys, tiny_depth, "images", library, out, "--batch-size", "1")
    assert code == 0 and err == ["stereoconv: nothing converted: 6 photos up to date"]

    code, err = run(capsys, tiny_depth, "images", library, out, "--divergence", "5")
    assert code == 1
    assert err[-1] == (
        "stereoconv: error: nothing converted: 6 existing outputs left alone; --overwrite "
        "replaces them"
    )
    assert len([line for line in err if "existing outputs left alone" in line]) == 1
    assert f"stereoconv: left alone: {out / 'scan.tif'} (made with other settings)" in err
    assert digests(out) == first

    code, err = run(capsys, tiny_depth, "images", library, out, "--divergence", "5", "--overwrite")
    assert code == 0 and err[-1] == "stereoconv: converted 6 photos", err
    changed = digests(out)
    assert all(changed[k] != first[k] for k in OUTPUTS)  # the right views moved further
    code, err = run(capsys, tiny_depth, "images", library, out, "--divergence", "5")
    assert code == 0 and err == ["stereoconv: nothing converted: 6 photos up to date"]


def test_outputs_not_made_by_stereoconv_are_left_alone(capsys, tmp_path, tiny_depth):
    photos, out = tmp_path / "photos", tmp_path / "out"
    photos.mkdir()
    for i, name in enumerate(["x.png", "y.png", "z.png"]):
        Image.fromarray(picture(16, 20, i)).save(photos / name)
    out.mkdir()
    (out / "x.png").write_bytes(b"someone else's file")
    code, err = run(capsys, tiny_depth, "images", photos, out)
    assert code == 1
    assert f"stereoconv: left alone: {out / 'x.png'} (not made by stereoconv)" in err
    assert (out / "x.png").read_bytes() == b"someone else's file"
    assert sorted(outputs_of(out)) == ["x.png", "y.png", "z.png"]

    # an output edited after stereoconv wrote it is no longer stereoconv's either
    Image.fromarray(picture(16, 40, 9)).save(out / "y.png")
    edited = (out / "y.png").read_bytes()
    code, err = run(capsys, tiny_depth, "images", photos, out)
    assert f"stereoconv: left alone: {out / 'y.png'} (changed since stereoconv wrote it)" in err
    assert (out / "y.png").read_bytes() == edited

    # an edited input is converted again: the output is stereoconv's, with the same settings
    z = (out / "z.png").read_bytes()
    Image.fromarray(picture(16, 20, 7)).save(photos / "z.png")
    code, err = run(capsys, tiny_depth, "images", photos, out, "--overwrite")
    assert code == 0 and err[-1] == "stereoconv: converted 3 photos", err
    assert (out / "z.png").read_bytes() != z
    assert (out / "x.png").read_bytes() != b"someone else's file"  # --overwrite replaced it


def test_a_folder_in_the_way_is_never_replaced(capsys, tmp_path, tiny_depth):
    photos, out = tmp_path / "photos", tmp_path / "out"
    photos.mkdir()
    Image.fromarray(picture(16, 20)).save(photos / "p.png")
    (out / "p.png").mkdir(parents=True)
    code, err = run(capsys, tiny_depth, "images", photos, out, "--overwrite")
    assert code == 1 and f"stereoconv: left alone: {out / 'p.png'} (a folder)" in err
    assert (out / "p.png").is_dir()


def test_the_first_bad_photo_stops_the_run_and_finished_work_is_kept(capsys, tmp_path, tiny_depth):
    photos, out = tmp_path / "photos", tmp_path / "out"
    photos.mkdir()
    Image.fromarray(picture(16, 20)).save(photos / "b.png")
    Image.fromarray(picture(16, 20, 1)).save(photos / "c.png")
    buffer = io.BytesIO()
    Image.fromarray(picture(48, 64, 2)).save(buffer, "JPEG")  # larger: converted after b and c
    data = buffer.getvalue()
    cut = data[: data.index(b"\xff\xda") + 100]  # the whole header, a little of the picture
    (photos / "a_cut.jpg").write_bytes(cut)
    code, err = run(capsys, tiny_depth, "images", photos, out, "-q")
    assert_one_line_error(code, err, f"cannot read image {photos / 'a_cut.jpg'}")
    manifest = json.loads((out / MANIFEST).read_text())
    assert sorted(manifest["outputs"]) == ["b.png", "c.png"]

    code, err = run(capsys, tiny_depth, "images", photos, out, "--skip-errors")
    assert code == 1
    assert err[-1] == (
        "stereoconv: error: nothing converted: 2 photos up to date, 1 failed (listed above)"
    )

    # a file that is no picture at all stops the run before any work
    (photos / "0.png").write_bytes(b"no png")
    code, err = run(capsys, tiny_depth, "images", photos, tmp_path / "out2")
    assert_one_line_error(code, err, f"cannot read image {photos / '0.png'}")
    assert not (tmp_path / "out2").exists()


def mp_attributes(mpo: Image.Image) -> dict:
    """The MP Attribute IFD of the current frame of an MPO."""
    data = mpo.info["mp"]
    ifd = TiffImagePlugin.ImageFileDirectory_v2(data[:8])
    stream = io.BytesIO(data)
    stream.seek(8)
    ifd.load(stream)
    if 0xB002 in ifd:  # the first frame: the index IFD comes first, then its attributes
        stream.seek(ifd.next)
        ifd = TiffImagePlugin.ImageFileDirectory_v2(data[:8])
        ifd.load(stream)
    return dict(ifd)


def test_mpo_holds_the_left_then_the_right_view(capsys, tmp_path, library, tiny_depth):
    library.joinpath("broken.jpg").unlink()
    mpo, pair = tmp_path / "mpo", tmp_path / "pair"
    assert run(capsys, tiny_depth, "images", library, mpo, "--format", "mpo")[0] == 0
    assert (
        run(capsys, tiny_depth, "images", library, pair, "--format", "jpeg", "--layout", "pair")[0]
        == 0
    )
    assert sorted(outputs_of(mpo)) == sorted(p.rsplit(".", 1)[0] + ".mpo" for p in GOOD)
    with Image.open(mpo / "rotated.mpo") as im:
        assert im.format == "MPO" and im.n_frames == 2 and im.size == (24, 40)
        first, second = im.mpinfo[0xB002]
        assert first["Attribute"]["MPType"] == second["Attribute"]["MPType"]
        assert first["Attribute"]["MPType"] == "Multi-Frame Image: (Disparity)"
        assert first["Attribute"]["RepresentativeImageFlag"]
        assert not second["Attribute"]["RepresentativeImageFlag"]
        assert im.getexif()[0x0112] == 1 and im.info["icc_profile"] == SRGB
        assert mp_attributes(im)[0xB101] == 1  # MPIndividualNum
        left = np.asarray(im.convert("RGB"))
        im.seek(1)
        assert mp_attributes(im)[0xB101] == 2 and mp_attributes(im)[0xB204] == 1
        right = np.asarray(im.convert("RGB"))
    # the same pictures as the pair layout's two JPEG files
    assert np.array_equal(left, np.asarray(Image.open(pair / "rotated_L.jpg")))
    assert np.array_equal(right, np.asarray(Image.open(pair / "rotated_R.jpg")))
    assert not np.array_equal(left, right)

    code, err = run(capsys, tiny_depth, "images", library, mpo, "--format", "mpo", "--layout", "tb")
    assert_one_line_error(code, err, "--format mpo holds both views")


def test_heic_out_when_asked(capsys, tmp_path, library, tiny_depth):
    library.joinpath("broken.jpg").unlink()
    out = tmp_path / "out"
    assert run(capsys, tiny_depth, "images", library, out, "--format", "heic", "-q") == (0, [])
    assert sorted(outputs_of(out)) == sorted(p.rsplit(".", 1)[0] + ".heic" for p in GOOD)
    with Image.open(out / "rotated.heic") as im:
        assert im.format == "HEIF" and im.size == (48, 40)
        assert im.getexif()[0x010F] == "StereoCam"


def test_two_photos_with_one_output_name(capsys, tmp_path, tiny_depth):
    photos, out = tmp_path / "photos", tmp_path / "out"
    photos.mkdir()
    Image.fromarray(picture(16, 20)).save(photos / "a.heic")
    Image.fromarray(picture(16, 20, 1)).save(photos / "a.jpg")
    code, err = run(capsys, tiny_depth, "images", photos, out, "--skip-errors")
    why = f"{photos / 'a.heic'} and {photos / 'a.jpg'} would both write a.jpg; rename one"
    assert code == 1 and f"stereoconv: failed: {why}" in err
    assert json.loads((out / MANIFEST).read_text())["outputs"]["a.jpg"]["input"] == "a.heic"


def test_photos_of_one_size_go_through_together(capsys, tmp_path, tiny_depth, monkeypatch):
    photos, out = tmp_path / "photos", tmp_path / "out"
    photos.mkdir()
    for i in range(5):
        Image.fromarray(picture(16, 20, i)).save(photos / f"same{i}.png")
    Image.fromarray(picture(20, 16, 9)).save(photos / "other.png")
    sizes = []
    views = StereoConverter.views

    def spy(self, frames, disparity):
        sizes.append(tuple(frames.shape[:3]))
        return views(self, frames, disparity)

    monkeypatch.setattr(StereoConverter, "views", spy)
    code, err = run(capsys, tiny_depth, "images", photos, out, "--batch-size", "2", "-q")
    assert code == 0, err
    assert sorted(sizes) == [(1, 16, 20), (1, 20, 16), (2, 16, 20), (2, 16, 20)]
    # a photo converted in a batch comes out as it does alone
    single = tmp_path / "single.png"
    assert run(capsys, tiny_depth, "image", photos / "same3.png", single)[0] == 0
    batch = np.asarray(Image.open(out / "same3.png")).astype(int)
    assert np.abs(batch - np.asarray(Image.open(single)).astype(int)).max() <= 1


def test_batched_groups_consecutive_equal_keys():
    items = [1, 1, 1, 2, 2, 1]
    assert list(batched_by(items, key=lambda x: x, size=2)) == [[1, 1], [1], [2, 2], [1]]
    assert list(batched_by([], key=lambda x: x, size=3)) == []


def test_out_dir_inside_in_dir_is_not_read_as_input(capsys, tmp_path, tiny_depth):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(2):
        Image.fromarray(picture(16, 20, i)).save(photos / f"p{i}.png")
    out = photos / "stereo"
    assert run(capsys, tiny_depth, "images", photos, out, "-q") == (0, [])
    code, err = run(capsys, tiny_depth, "images", photos, out)
    assert code == 0 and err == ["stereoconv: nothing converted: 2 photos up to date"]
    assert sorted(outputs_of(out)) == ["p0.png", "p1.png"]


def test_progress_bar_on_a_terminal_only_and_quiet(capsys, monkeypatch, tmp_path, tiny_depth):
    """A bar on a terminal; none into a pipe or a log (no carriage-return lines); none with
    --quiet, which also drops the summary."""
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(picture(16, 20)).save(photos / "p.png")
    argv = ["images", photos, tmp_path / "a", "--backend", "warp", "--device", "cpu"]
    argv = [str(a) for a in argv + ["--depth-model", tiny_depth]]
    assert main(argv) == 0
    assert capsys.readouterr().err == "stereoconv: converted 1 photo\n"  # a pipe: no bar
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    argv[2] = str(tmp_path / "b")
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "photos: 100%" in err and "1/1" in err and "file/s" in err
    assert err.endswith("stereoconv: converted 1 photo\n")
    argv[2] = str(tmp_path / "c")
    assert main(argv + ["--quiet"]) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    "case,text",
    [
        ("missing", "input folder not found"),
        ("file", "is a file; `stereoconv image` converts a single photo"),
        ("same", "is IN_DIR; choose another folder"),
        ("inside-out", "is inside OUT_DIR"),
        ("out-is-file", "give a folder"),
        ("empty", "no photos (.heic, .heif, .jpeg, .jpg, .png, .tif, .tiff, .webp) in"),
        ("manifest", "is not a stereoconv manifest"),
    ],
)
def test_bad_folders_are_one_line(capsys, tmp_path, tiny_depth, case, text):
    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    if case != "empty":
        Image.fromarray(picture(16, 20)).save(photos / "sub" / "p.png")
    in_dir, out_dir = photos, tmp_path / "out"
    if case == "missing":
        in_dir = tmp_path / "nowhere"
    elif case == "file":
        in_dir = photos / "sub" / "p.png"
    elif case == "same":
        out_dir = photos / "sub" / ".."
    elif case == "inside-out":
        in_dir, out_dir = photos / "sub", photos
    elif case == "out-is-file":
        out_dir.write_text("")
    elif case == "manifest":
        out_dir.mkdir()
        (out_dir / MANIFEST).write_text("{not json")
    before = digests(photos)
    code, err = run(capsys, tiny_depth, "images", in_dir, out_dir)
    assert_one_line_error(code, err, text)
    assert digests(photos) == before


def test_format_choices_match_the_library():
    assert FORMAT_CHOICES == FORMATS


def test_a_library_with_the_diffusion_backend(capsys, tmp_path, tiny_sd, tiny_depth):
    photos, out = tmp_path / "photos", tmp_path / "out"
    photos.mkdir()
    for i in range(2):
        Image.fromarray(picture(24, 32, i)).save(photos / f"p{i}.png")
    argv = ["images", photos, out, "--backend", "diffusion", "--model", tiny_sd, "--steps", "3"]
    code, err = run(capsys, tiny_depth, *argv, "-q")
    assert code == 0, err
    for i in range(2):
        sbs = np.asarray(Image.open(out / f"p{i}.png"))
        assert sbs.shape == (24, 64, 3)  # hybrid composite: the left view is the photo
        assert np.array_equal(sbs[:, :32], np.asarray(Image.open(photos / f"p{i}.png")))
    code, err = run(capsys, tiny_depth, *argv)
    assert code == 0 and err[-1] == "stereoconv: nothing converted: 2 photos up to date", err


def test_stereo_tags_in_names(capsys, tmp_path, tiny_depth):
    """Players show a file in stereo when its name says so: stereoconv chooses every name
    here, so each carries its layout's tag by default."""
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(picture(16, 20)).save(photos / "p.png")
    for layout, tag in [("sbs", "_LR"), ("half-sbs", "_3dh"), ("tb", "_TB"), ("half-tb", "_3dv")]:
        out = tmp_path / layout
        code, err = run(
            capsys, tiny_depth, "images", photos, out, "--layout", layout, "--name-tag", "auto"
        )
        assert code == 0, err
        assert sorted(p.name for p in out.iterdir() if p.name != MANIFEST) == [f"p{tag}.png"]
    code, err = run(
        capsys,
        tiny_depth,
        "images",
        photos,
        tmp_path / "own",
        "--name-tag",
        "_SBS",
        "--format",
        "jpeg",
    )
    assert code == 0 and (tmp_path / "own" / "p_SBS.jpg").is_file()
    code, err = run(
        capsys,
        tiny_depth,
        "images",
        photos,
        tmp_path / "pair",
        "--layout",
        "pair",
        "--name-tag",
        "auto",
    )
    assert code == 0 and {p.name for p in (tmp_path / "pair").glob("p*")} == {"p_L.png", "p_R.png"}


def test_a_stop_signal_between_a_photos_write_and_its_record_waits_for_the_record(
    tmp_path, monkeypatch
):
    """Ctrl-C arriving just after an output is written is raised once its manifest record is
    made: the rerun then finds the output its own, not "not made by stereoconv"."""
    import os
    import signal
    from pathlib import PurePosixPath

    from stereoconv.jobs import library

    real_write = library.write_bytes

    def write_then_interrupted(path, data):
        real_write(path, data)
        os.kill(os.getpid(), signal.SIGINT)  # as a user's Ctrl-C right after the rename

    monkeypatch.setattr(library, "write_bytes", write_then_interrupted)
    task = library.Task(PurePosixPath("a.png"), (PurePosixPath("a_LR.png"),), "png", "in", "s")
    manifest = {"outputs": {}}
    with pytest.raises(KeyboardInterrupt):
        library.write_task(task, [b"picture"], tmp_path, manifest)
    assert (tmp_path / "a_LR.png").read_bytes() == b"picture"
    assert (
        manifest["outputs"]["a_LR.png"]["output_sha256"] == hashlib.sha256(b"picture").hexdigest()
    )
