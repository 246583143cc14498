"""The command line as the tests run it."""

from __future__ import annotations

from stereoconv.cli.main import main


def run(capsys, *argv) -> tuple[int, str, list[str]]:
    """`stereoconv ARGV --quiet`, the warp backend unless ARGV names one: (exit code, stdout,
    stderr lines)."""
    argv = [str(a) for a in argv]
    if "--backend" not in argv:
        argv += ["--backend", "warp"]
    code = main(argv + ["--quiet"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err.strip().splitlines()


def assert_one_line_error(code: int, err: list[str], text: str) -> None:
    """A failure said in one line that starts `stereoconv: error:` and holds `text`."""
    assert code != 0
    assert len(err) == 1 and err[0].startswith("stereoconv: error:") and text in err[0], err
