"""`stereoconv image` as a user runs it: outputs, and one clear line for every mistake."""

import hashlib

import numpy as np
import pytest
from PIL import Image

from stereoconv.cli.main import main
from tests.helpers.cli import assert_one_line_error


@pytest.fixture
def photo(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "photo.png"
    Image.fromarray(rng.integers(0, 256, (37, 61, 3), dtype=np.uint8)).save(path)
    return path


def run(capsys, *argv):
    """`stereoconv ARGV` with the warp backend unless ARGV names one."""
    argv = [str(a) for a in argv]
    if "--backend" not in argv:
        argv += ["--backend", "warp"]
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.err.strip().splitlines()


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    "layout,size",
    [
        ("sbs", (122, 37)),
        ("half-sbs", (60, 37)),
        ("tb", (61, 74)),
        ("half-tb", (61, 36)),
        ("anaglyph", (61, 37)),
    ],
)
def test_layouts_with_the_tiny_depth_model(capsys, tmp_path, photo, tiny_depth, layout, size):
    out = tmp_path / f"out-{layout}.png"
    code, err = run(
        capsys,
        "image",
        photo,
        out,
        "--depth-model",
        tiny_depth,
        "--layout",
        layout,
        "--device",
        "cpu",
    )
    assert code == 0, err
    assert Image.open(out).size == size
    if layout == "sbs":  # the left half is the input, untouched
        assert np.array_equal(np.asarray(Image.open(out))[:, :61], np.asarray(Image.open(photo)))


def test_pair_layout_and_both_views(capsys, tmp_path, photo, tiny_depth):
    code, err = run(
        capsys,
        "image",
        photo,
        tmp_path / "p.jpg",
        "--depth-model",
        tiny_depth,
        "--layout",
        "pair",
        "--views",
        "both",
        "--divergence",
        "5",
    )
    assert code == 0, err
    assert Image.open(tmp_path / "p_L.jpg").size == (61, 37)
    assert Image.open(tmp_path / "p_R.jpg").size == (61, 37)


def test_output_in_a_missing_folder_is_created(capsys, tmp_path, photo, tiny_depth):
    out = tmp_path / "new" / "deeper" / "out.png"
    code, err = run(capsys, "image", photo, out, "--depth-model", tiny_depth)
    assert code == 0, err
    assert out.is_file()


def test_depth_map_of_another_size_is_resized(capsys, tmp_path, photo):
    np.save(tmp_path / "d.npy", np.linspace(0, 1, 10 * 17, dtype=np.float32).reshape(10, 17))
    code, err = run(capsys, "image", photo, tmp_path / "o.png", "--depth", tmp_path / "d.npy")
    assert code == 0, err
    assert Image.open(tmp_path / "o.png").size == (122, 37)


def test_missing_input(capsys, tmp_path):
    code, err = run(capsys, "image", tmp_path / "nope.png", tmp_path / "o.png")
    assert_one_line_error(code, err, "input not found")


def test_unreadable_image_and_input_untouched(capsys, tmp_path):
    bad = tmp_path / "text.png"
    bad.write_text("this is not an image")
    before = digest(bad)
    code, err = run(capsys, "image", bad, tmp_path / "o.png")
    assert_one_line_error(code, err, "cannot read image")
    assert digest(bad) == before and not (tmp_path / "o.png").exists()


def test_unreadable_depth_map(capsys, tmp_path, photo):
    (tmp_path / "d.png").write_text("nope")
    code, err = run(capsys, "image", photo, tmp_path / "o.png", "--depth", tmp_path / "d.png")
    assert_one_line_error(code, err, "cannot read")
    assert not (tmp_path / "o.png").exists()


def test_unknown_preset_and_preset_typo(capsys, tmp_path, photo):
    code, err = run(capsys, "image", photo, tmp_path / "o.png", "--preset", "nonesuch")
    assert_one_line_error(code, err, "unknown preset 'nonesuch'")
    typo = tmp_path / "mine.toml"
    typo.write_text('backend = "warp"\ndivergance = 3.0\n')
    code, err = run(capsys, "image", photo, tmp_path / "o.png", "--preset", typo)
    assert_one_line_error(code, err, "did you mean 'divergence'")


def test_output_equal_to_input_is_refused(capsys, photo):
    before = digest(photo)
    code, err = run(capsys, "image", photo, photo, "--overwrite")
    assert_one_line_error(code, err, "is the input")
    assert digest(photo) == before


def test_existing_output_needs_overwrite(capsys, tmp_path, photo, tiny_depth):
    out = tmp_path / "o.png"
    out.write_bytes(b"keep me")
    code, err = run(capsys, "image", photo, out, "--depth-model", tiny_depth)
    assert_one_line_error(code, err, "--overwrite")
    assert out.read_bytes() == b"keep me"
    code, err = run(capsys, "image", photo, out, "--depth-model", tiny_depth, "--overwrite")
    assert code == 0 and Image.open(out).size == (122, 37)


@pytest.mark.parametrize(
    "option,value,text",
    [
        ("--layout", "diagonal", "'diagonal' is not one of 'sbs', 'half-sbs'"),
        ("--divergence", "-1", "--divergence"),
        ("--convergence", "2", "--convergence"),
        ("--divergence", "lots", "lots"),
        ("--views", "left", "'left' is not one of 'right', 'both'"),
        ("--name-tag", "a/b", "--name-tag must be"),
    ],
)
def test_bad_option_values(capsys, tmp_path, photo, option, value, text):
    code, err = run(capsys, "image", photo, tmp_path / "o.png", option, value)
    assert_one_line_error(code, err, text)


def test_unsupported_output_format(capsys, tmp_path, photo):
    code, err = run(capsys, "image", photo, tmp_path / "o.xyz")
    assert_one_line_error(code, err, "unsupported output format")


def test_missing_model_names_the_model_and_how_to_provide_it(capsys, tmp_path, photo, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-cache"))
    model = "someone/no-such-model"
    code, err = run(capsys, "image", photo, tmp_path / "o.png", "--depth-model", model)
    assert_one_line_error(code, err, "'someone/no-such-model'")
    assert "HF_HOME" in err[0] and "local folder" in err[0]


def test_output_folder_gets_a_tagged_name(capsys, tmp_path, photo, tiny_depth):
    folder = tmp_path / "out"
    folder.mkdir()
    code, err = run(capsys, "image", photo, folder, "--depth-model", tiny_depth)
    assert code == 0, err
    assert [p.name for p in folder.iterdir()] == ["photo_LR.png"]
    code, err = run(
        capsys, "image", photo, folder, "--depth-model", tiny_depth, "--layout", "half-sbs"
    )
    assert code == 0 and (folder / "photo_3dh.png").is_file()
    code, err = run(capsys, "image", photo, tmp_path / "given.png", "--depth-model", tiny_depth)
    assert code == 0 and (tmp_path / "given.png").is_file()  # a given name is kept


def test_convergence_auto_per_photo(capsys, tmp_path, photo):
    """`image --convergence auto` works per photo: with the near things at the left and right
    borders, the screen plane moves forward to them, so the right view differs from the one the
    fixed plane (0.5) gives."""
    near_borders = np.abs(np.linspace(-1, 1, 61, dtype=np.float32))[None].repeat(37, 0)
    np.save(tmp_path / "d.npy", near_borders)
    outs = []
    for value in ("0.5", "auto"):
        outs.append(tmp_path / f"c-{value}.png")
        code, err = run(
            capsys,
            "image",
            photo,
            outs[-1],
            "--depth",
            tmp_path / "d.npy",
            "--convergence",
            value,
            "--divergence",
            "8",
        )
        assert code == 0, err
    fixed, auto = (np.asarray(Image.open(p))[:, 61:].astype(int) for p in outs)
    assert np.abs(fixed - auto).mean() > 5
