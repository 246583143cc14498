"""Settings as dataclass fields that carry their command-line help and their range, and the checks
of those ranges and of closed sets of choices (stereoconv.config's records use them)."""

from __future__ import annotations

import math
from dataclasses import field, fields

from stereoconv.errors import UserError


def setting(
    default,
    help: str,
    *,
    min: float | None = None,
    max: float | None = None,
    above: float | None = None,
    below: float | None = None,
):
    """A config field with its command-line help and its range: min <= value <= max, and
    strictly above < value < below where an end is open. check_ranges enforces them."""
    bounds = {"min": min, "max": max, "above": above, "below": below}
    return field(
        default=default,
        metadata={"help": help, **{k: v for k, v in bounds.items() if v is not None}},
    )


def range_error(option: str, value: float, meta: dict) -> str | None:
    """Why a number is out of the range in a field's metadata, or None if it is in it. NaN is
    never in range; infinity only where the range has no upper end."""
    tests = (
        ("min", lambda b: value >= b, ">="),
        ("above", lambda b: value > b, ">"),
        ("max", lambda b: value <= b, "<="),
        ("below", lambda b: value < b, "<"),
    )
    show = lambda v: str(v) if isinstance(v, int) else f"{v:g}"  # noqa: E731
    for key, inside, word in tests:
        if key in meta and not inside(meta[key]):
            return f"--{option} must be {word} {show(meta[key])}, not {show(value)}"
    if math.isnan(value):
        return f"--{option} must be a number, not nan"
    return None


def check_ranges(settings) -> None:
    """Every numeric field of a dataclass instance inside the range its metadata gives."""
    for f in fields(settings):
        value = getattr(settings, f.name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        why = range_error(f.name.replace("_", "-"), value, f.metadata)
        if why:
            raise UserError(why)


def check_choice(option: str, value: str, choices: tuple[str, ...]) -> None:
    """A closed-set setting is one of its choices."""
    if value not in choices:
        raise UserError(f"--{option} must be one of {', '.join(choices)}, not {value!r}")
