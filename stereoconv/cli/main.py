"""The `stereoconv` group and its error policy: a user's mistake is one line and a non-zero
exit, Ctrl-C and SIGTERM stop cleanly, the libraries' own warnings stay off the terminal. The
commands are added here, explicitly; they import nothing from this module."""

from __future__ import annotations

import errno
import logging
import os
import signal
import sys
import threading
import warnings

import click

from stereoconv import __version__, lock
from stereoconv.cli.convert import image, images, preview, video
from stereoconv.cli.evaluate import eval_command
from stereoconv.cli.generate import depth, text
from stereoconv.errors import UserError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="stereoconv")
def cli() -> None:
    """Turn 2D photos and videos into stereo 3D."""


for command in (image, text, depth, video, preview, images, eval_command):
    cli.add_command(command)

# the libraries whose own logging (warnings to developers: "install accelerate", deprecations)
# is kept off a user's terminal, and the environment variables that set it before they load
LIBRARY_LOGGERS = ("accelerate", "diffusers", "huggingface_hub", "transformers", "torch", "ray")
LIBRARY_VERBOSITY = {
    "TRANSFORMERS_VERBOSITY": "error",
    "DIFFUSERS_VERBOSITY": "error",
    "HF_HUB_VERBOSITY": "error",
    "ACCELERATE_LOG_LEVEL": "ERROR",
}


def quiet_libraries() -> None:
    """Only stereoconv speaks on stderr: a note, a progress bar, one error line. The libraries'
    warnings are for their developers. `python -W default` (or PYTHONWARNINGS) brings Python's
    warnings back, and the variables above, set by the user, win over these defaults."""
    if not sys.warnoptions:
        warnings.simplefilter("ignore")
    for name, level in LIBRARY_VERBOSITY.items():
        os.environ.setdefault(name, level)
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


# the commands whose finished work a rerun of the same command keeps (video chunks, photos)
RESUMABLE = ("video", "images")


def resumes(argv: list[str] | None) -> bool:
    """Whether the command of the command line resumes when run again."""
    args = sys.argv[1:] if argv is None else argv
    return next((a for a in args if a in cli.commands), None) in RESUMABLE


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors become one line on stderr and exit status 1; Ctrl-C and
    SIGTERM stop cleanly (finished chunks kept, temporary files removed) with status 130 and
    143 (128 + the signal, the shells' convention); a full disk is said in one line."""
    quiet_libraries()
    main_thread = threading.current_thread() is threading.main_thread()
    received: list[int] = []

    def stop(signum, frame) -> None:
        received.append(signum)
        raise KeyboardInterrupt  # the same clean stop as Ctrl-C

    previous = signal.signal(signal.SIGTERM, stop) if main_thread else None
    try:
        cli.main(args=argv, prog_name="stereoconv", standalone_mode=False)
    except UserError as exc:
        click.echo(f"stereoconv: error: {exc}", err=True)
        return 1
    except (click.exceptions.Abort, KeyboardInterrupt):  # click turns Ctrl-C into Abort
        resume = "; run the same command again to resume" if resumes(argv) else ""
        click.echo(f"stereoconv: interrupted{resume}", err=True)
        return 128 + signal.SIGTERM if received else 130
    except click.ClickException as exc:
        click.echo(f"stereoconv: error: {exc.format_message()}", err=True)
        return exc.exit_code
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        where = f" writing {exc.filename}" if getattr(exc, "filename", None) else ""
        click.echo(
            f"stereoconv: error: the disk is full{where}; finished work is kept: free some "
            "space and run the same command again",
            err=True,
        )
        return 1
    finally:
        lock.release_all()
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
    return 0
