"""Convert a photo library: every photo under IN_DIR to stereo under OUT_DIR, at the same relative
path, in batches of same-size photos.

A manifest in OUT_DIR records each output: its input, the input's SHA-256, a hash of the settings
and the output's own SHA-256. An output is up to date when all of these still match; one that
stereoconv did not write (no record, or changed since) or wrote with other settings is left alone
unless `overwrite`. "Settings" are every StereoConfig field except batch_size (it changes speed,
not pictures: each photo is normalised and seeded on its own), plus the output format and its
encoder quality. The stereoconv version is recorded, not compared.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

from stereoconv import __version__, lock
from stereoconv.config import StereoConfig, pixel_settings
from stereoconv.converter import StereoConverter
from stereoconv.errors import UserError
from stereoconv.fileio import stops_deferred
from stereoconv.jobs.image import output_paths, refuse_video_only
from stereoconv.jobs.manifest import (
    load_manifest,
    save_manifest,
    settings_hash,
    sha256_file,
)
from stereoconv.jobs.photos import BatchMapper
from stereoconv.layouts import Layout, layout_of
from stereoconv.media.images import (
    PHOTO_FORMATS,
    QUALITY,
    SUFFIX_FORMATS,
    Photo,
    read_photo,
    upright_size,
    write_bytes,
)
from stereoconv.progress import Progress, silent

FORMATS = ("same", *PHOTO_FORMATS)
SHOWN_PATHS = 10  # how many left-alone outputs a report names before "... and N more"


@dataclass(frozen=True)
class Task:
    """One input photo and what it becomes."""

    source: PurePosixPath  # relative to IN_DIR
    outputs: tuple[PurePosixPath, ...]  # relative to OUT_DIR
    fmt: str  # output format, a key of PHOTO_FORMATS
    input_sha256: str
    settings: str  # settings hash
    size_hint: tuple[int, int] = (0, 0)  # (height, width) from the header, for grouping


@dataclass
class LibraryOutcome:
    """What a library run did with each photo."""

    converted: list[PurePosixPath] = field(default_factory=list)  # inputs
    up_to_date: list[PurePosixPath] = field(default_factory=list)  # inputs
    left_alone: list[tuple[PurePosixPath, str]] = field(default_factory=list)  # (output, why)
    failed: list[tuple[PurePosixPath, str]] = field(default_factory=list)  # (input, why)
    # comfort statistics of each converted photo, for --report: (input, outputs, frame_stats)
    stats: list[tuple[PurePosixPath, tuple[PurePosixPath, ...], dict]] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"converted {_photos(len(self.converted))}"] if self.converted else []
        if self.up_to_date:
            parts.append(f"{_photos(len(self.up_to_date))} up to date")
        if self.left_alone:
            parts.append(f"{len(self.left_alone)} existing outputs left alone")
        if self.failed:
            parts.append(f"{len(self.failed)} failed")
        return ", ".join(parts) if self.converted else "nothing converted: " + ", ".join(parts)


def _photos(n: int) -> str:
    return f"{n} photo" if n == 1 else f"{n} photos"


# --- folders and names ---------------------------------------------------------------------------


def check_folders(in_dir: Path, out_dir: Path) -> Path:
    """Refuse folders that cannot work; returns OUT_DIR resolved. OUT_DIR may lie inside IN_DIR
    (it is then not searched for photos); it may not be IN_DIR or contain it, where outputs
    could land among the inputs."""
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    if not in_dir.exists():
        raise UserError(f"input folder not found: {in_dir}")
    if not in_dir.is_dir():
        raise UserError(f"{in_dir} is a file; `stereoconv image` converts a single photo")
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"output {out_dir} is a file; give a folder")
    source, target = in_dir.resolve(), out_dir.resolve()
    if target == source:
        raise UserError(f"OUT_DIR {out_dir} is IN_DIR; choose another folder for the outputs")
    if target in source.parents:
        raise UserError(
            f"IN_DIR {in_dir} is inside OUT_DIR {out_dir}; choose an OUT_DIR outside it"
        )
    return target


def find_photos(in_dir: Path, skip: Path | None = None) -> list[PurePosixPath]:
    """Photos under `in_dir` by suffix, relative, sorted. Hidden files and folders (our own
    temporary files, macOS "._" files), symlinked folders and the folder `skip` are passed by."""
    found = []
    for root, dirs, files in os.walk(in_dir):
        dirs[:] = [d for d in dirs if not d.startswith(".") and (Path(root, d).resolve() != skip)]
        for name in files:
            if not name.startswith(".") and Path(name).suffix.lower() in SUFFIX_FORMATS:
                found.append(PurePosixPath(Path(root, name).relative_to(in_dir).as_posix()))
    return sorted(found, key=str)


def output_format(source: PurePosixPath, requested: str) -> str:
    """`same`: the input's format, HEIC becoming JPEG (most viewers cannot show HEIC)."""
    if requested != "same":
        return requested
    fmt = SUFFIX_FORMATS[source.suffix.lower()]
    return "jpeg" if fmt == "heic" else fmt


def output_names(
    source: PurePosixPath, requested: str, layout: Layout, tag: str = ""
) -> list[PurePosixPath]:
    """Relative output names: the input's, with the stereo tag (stereoconv.layouts.name_tag)
    and the format's suffix (the input's own one for `same`); two files `_L`, `_R` for the
    `pair` layout, one file for `mpo` (both need no tag)."""
    fmt = output_format(source, requested)
    if fmt == "mpo":
        return [source.with_suffix(".mpo")]
    keep = requested == "same" and SUFFIX_FORMATS[source.suffix.lower()] == fmt
    suffix = source.suffix if keep else PHOTO_FORMATS[fmt][0]
    return output_paths(source.with_name(source.stem + tag + suffix), layout)


def settings_of(config: StereoConfig, fmt: str) -> dict[str, Any]:
    return {**pixel_settings(config), "format": fmt, "quality": QUALITY.get(fmt)}


# --- the manifest --------------------------------------------------------------------------------


def output_state(task: Task, output: PurePosixPath, manifest: dict, out_dir: Path) -> str:
    """`missing`, `current`, `stale` (ours, same settings, the input has changed since) or why
    the output is not ours to replace."""
    path = out_dir / output
    if not path.exists():
        return "missing"
    if path.is_dir():
        return "a folder"  # never replaced
    record = manifest["outputs"].get(str(output))
    if record is None:
        return "not made by stereoconv"
    if record["output_sha256"] != sha256_file(path):
        return "changed since stereoconv wrote it"
    if record["input"] != str(task.source):
        return f"made from {record['input']}"
    if record["settings"] != task.settings:
        return "made with other settings"
    return "current" if record["input_sha256"] == task.input_sha256 else "stale"


# --- planning ------------------------------------------------------------------------------------


def make_task(
    in_dir: Path, source: PurePosixPath, config: StereoConfig, requested: str, tag: str = ""
) -> tuple[Task, dict]:
    """The task of one input (its size hint not yet read) and its settings."""
    path = in_dir / source
    try:
        digest = sha256_file(path)
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from None
    fmt = output_format(source, requested)
    settings = settings_of(config, fmt)
    outputs = tuple(output_names(source, requested, layout_of(config.layout), tag))
    return Task(source, outputs, fmt, digest, settings_hash(settings)), settings


def plan(
    in_dir: Path,
    out_dir: Path,
    sources: Iterable[PurePosixPath],
    config: StereoConfig,
    requested: str,
    manifest: dict,
    overwrite: bool,
    fail: Callable[[PurePosixPath, str], None],
    report: LibraryOutcome,
    tag: str = "",
) -> list[Task]:
    """The tasks to run. Up-to-date inputs and left-alone outputs go to the report; unreadable
    inputs and inputs whose output name another input already has go to `fail`."""
    tasks, claimed = [], {}
    for source in sources:
        try:
            task, settings = make_task(in_dir, source, config, requested, tag)
        except UserError as exc:
            fail(source, str(exc))
            continue
        taken = [o for o in task.outputs if o in claimed]
        if taken:
            other = in_dir / claimed[taken[0]]
            why = f"{other} and {in_dir / source} would both write {taken[0]}; rename one"
            fail(source, why)
            continue
        claimed.update(dict.fromkeys(task.outputs, source))
        manifest["settings"][task.settings] = settings
        states = {o: output_state(task, o, manifest, out_dir) for o in task.outputs}
        blocked = [(o, s) for o, s in states.items() if s not in ("missing", "current", "stale")]
        if blocked and (not overwrite or any(s == "a folder" for _, s in blocked)):
            report.left_alone += blocked
        elif all(s == "current" for s in states.values()):
            report.up_to_date.append(source)
        else:
            try:  # a file that is no picture fails here, before any work
                tasks.append(
                    replace(task, size_hint=upright_size(in_dir / source, config.max_megapixels))
                )
            except UserError as exc:
                fail(source, str(exc))
    return tasks


# --- converting ----------------------------------------------------------------------------------


def batched_by(items: Iterable, key: Callable, size: int) -> Iterator[list]:
    """Consecutive items with equal key(item), at most `size` a batch."""
    batch: list = []
    for item in items:
        if batch and (len(batch) == size or key(item) != key(batch[0])):
            yield batch
            batch = []
        batch.append(item)
    if batch:
        yield batch


def check_request(
    config: StereoConfig, in_dir: Path, out_dir: Path, requested: str
) -> list[PurePosixPath]:
    """Refuse what cannot work before any work; returns the photos found under in_dir."""
    layout = layout_of(config.layout)
    refuse_video_only(layout)
    if requested not in FORMATS:
        raise UserError(f"--format must be one of {', '.join(FORMATS)}, not {requested!r}")
    if requested == "mpo" and layout.files != 2:
        raise UserError("--format mpo holds the two views as two pictures: use --layout pair")
    sources = find_photos(in_dir, skip=check_folders(in_dir, out_dir))
    if not sources:
        suffixes = ", ".join(sorted(SUFFIX_FORMATS))
        raise UserError(f"no photos ({suffixes}) in {in_dir}")
    return sources


def convert_library(
    converter: StereoConverter,
    in_dir: Path,
    out_dir: Path,
    mapper: BatchMapper,
    requested: str = "same",
    overwrite: bool = False,
    skip_errors: bool = False,
    tag: str = "",
    progress: Progress = silent,
) -> LibraryOutcome:
    """Convert every photo under in_dir that is not up to date in out_dir. A bad photo raises
    UserError, or with skip_errors is listed in the outcome and passed by. mapper: where batches
    are converted (runner.local.local_batches: in this process). tag: the stereo tag in every
    output name (stereoconv.layouts.name_tag). progress: ("checking", ...) while the photos are
    planned, then ("photos", ...)."""
    config = converter.config
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    sources = check_request(config, in_dir, out_dir, requested)
    manifest = load_manifest(out_dir)
    outcome = LibraryOutcome()

    def fail(source: PurePosixPath, why: str) -> None:
        if not skip_errors:
            raise UserError(why)
        outcome.failed.append((source, why))

    def checking() -> Iterator[PurePosixPath]:
        for source in sources:
            yield source
            progress("checking", 1, len(sources))

    tasks = plan(
        in_dir, out_dir, checking(), config, requested, manifest, overwrite, fail, outcome, tag
    )
    tasks.sort(key=lambda t: (t.size_hint, str(t.source)))
    if tasks:  # one run writes OUT_DIR at a time; planning wrote nothing, so a bad photo found
        made = not out_dir.exists()  # there leaves no OUT_DIR behind
        try:
            with lock.holding(out_dir, folder=True):
                run = LibraryRun(in_dir, out_dir, config, manifest, outcome, fail, progress)
                run.convert(tasks, mapper, skip_errors)
        except BaseException:
            if made:  # nor does a run that stops before its first photo (a model not found)
                remove_empty_folders(out_dir)
            raise
    return outcome


def remove_empty_folders(top: Path) -> None:
    """Remove `top` and the folders under it that hold no file."""
    for folder, _, _ in sorted(os.walk(top), key=lambda entry: -len(entry[0])):
        try:
            os.rmdir(folder)
        except OSError:  # not empty
            pass


@dataclass
class LibraryRun:
    """The converting half of a library run: photos read in order, converted batch by batch,
    written with their manifest records. The manifest is saved after each batch and when the
    run stops, so finished work is kept."""

    in_dir: Path
    out_dir: Path
    config: StereoConfig
    manifest: dict
    outcome: LibraryOutcome
    fail: Callable[[PurePosixPath, str], None]
    progress: Progress

    def convert(self, tasks: list[Task], mapper: BatchMapper, skip_errors: bool) -> None:
        stop: list[UserError] = []  # the bad photo that ends the run, after the batch before it

        def read_all() -> Iterator[tuple[Task, Photo]]:
            for task in tasks:
                try:
                    yield task, read_photo(self.in_dir / task.source, self.config.max_megapixels)
                except UserError as exc:
                    if not skip_errors:
                        stop.append(exc)
                        return
                    self.outcome.failed.append((task.source, str(exc)))
                    self.progress("photos", 1, len(tasks))

        before = dict(self.manifest["outputs"])
        try:
            batches = batched_by(read_all(), lambda tp: tp[1].rgb.shape, self.config.batch_size)
            for batch, results in mapper(batches, self.config.layout):
                self.keep(batch, results)
                save_manifest(self.out_dir, self.manifest)
                self.progress("photos", len(batch), len(tasks))
            if stop:
                raise stop[0]
        finally:
            if self.manifest["outputs"] != before:  # stopped by an error or Ctrl-C: keep it
                save_manifest(self.out_dir, self.manifest)

    def keep(self, batch: list[tuple[Task, Photo]], results: list) -> None:
        """Write each converted photo of a batch; a photo its worker could not convert fails."""
        for (task, _), result in zip(batch, results, strict=True):
            if isinstance(result, UserError):
                self.fail(task.source, str(result))
                continue
            task_files, stats = result
            try:
                write_task(task, task_files, self.out_dir, self.manifest)
                self.outcome.converted.append(task.source)
                self.outcome.stats.append((task.source, task.outputs, stats))
            except UserError as exc:
                self.fail(task.source, str(exc))


def write_task(task: Task, files: list[bytes], out_dir: Path, manifest: dict) -> None:
    """Write one photo's outputs atomically and record each in the manifest: a stop signal
    waits for both (an output written but not recorded would be refused by the rerun as not
    made by stereoconv)."""
    for output, data in zip(task.outputs, files, strict=True):
        with stops_deferred():
            write_bytes(out_dir / output, data)
            manifest["outputs"][str(output)] = {
                "input": str(task.source),
                "input_sha256": task.input_sha256,
                "settings": task.settings,
                "output_sha256": hashlib.sha256(data).hexdigest(),
                "stereoconv": __version__,
            }
