"""The progress contract: jobs, runners and the diffusion pipeline say how far they are by
calling a `Progress`; only the command line turns that into bars (stereoconv.cli.bars), so the
library prints nothing and a caller may count, log or ignore it.

    progress(stage, advance, total)

`stage` names what is counted ("frames", "photos", "diffusion", ...), `advance` is how many
units were just done and `total` the stage's size (None where it is not known). Calls may come
from several threads at once (chunks converted together).
"""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[str, int, "int | None"], None]


def silent(stage: str, advance: int, total: int | None) -> None:
    """The progress of a caller that does not ask for any."""
