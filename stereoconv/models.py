"""Loading models by hub id or local folder, with one clear line when that fails, and picking
the compute device."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path
from urllib.parse import urlparse

import torch

from stereoconv.errors import UserError

# Held while a model is built. transformers' from_pretrained sets the process's default dtype
# while it builds (half precision for a half-precision model), and that reaches every thread:
# a network built beside it (the shot pass's, in a thread of its own) got half-precision
# buffers and failed on an H100 (2026-12-06).
BUILDING = threading.RLock()


def pick_device(name: str | None = None) -> torch.device:
    """The asked device, or the best available: CUDA, then Apple MPS, then the CPU."""
    if name:
        if name not in ("cuda", "cpu", "mps") and not name.startswith("cuda:"):
            raise UserError(f"--device must be cuda, cuda:N, mps or cpu, not {name!r}")
        if name.startswith("cuda") and not torch.cuda.is_available():
            raise UserError(f"--device {name}: CUDA is not available on this machine")
        if name == "mps" and not torch.backends.mps.is_available():
            raise UserError("--device mps: Apple MPS is not available on this machine")
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub answers at all (offline mode counts as no)."""
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return False
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _quiet_loading() -> None:
    """transformers' per-tensor "Loading weights" bar would tear through the job's own bar, and
    the libraries' own warnings about weights are replaced by load_pretrained's one error."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    diffusers_logging.set_verbosity_error()


def _check_weights(model, info: dict, name: str, what: str, part: str) -> None:
    """Weights that do not fit the model's architecture are an error, never a random start."""
    problems = []
    for key, label in (
        ("missing_keys", "missing"),
        ("unexpected_keys", "unexpected"),
        ("mismatched_keys", "of the wrong shape"),
    ):
        keys = list(info.get(key) or [])
        if keys:
            first = keys[0][0] if isinstance(keys[0], tuple) else keys[0]
            problems.append(f"{len(keys)} weights {label} (e.g. {first})")
    if problems:
        where = f"{part} of {what} {name!r}" if part else f"{what} {name!r}"
        raise UserError(
            f"{where}: the weights do not fit {type(model).__name__}: {'; '.join(problems)}"
        )


def load_pretrained(cls, name: str, what: str, strict: bool = True, **kwargs):
    """cls.from_pretrained(name) for a hub id or a local folder. The cache is tried first (no
    network round trips), the hub only if it answers. A model that cannot be had (offline, not
    cached, a folder that is not a model) becomes one UserError naming it and how to provide it.
    Models (anything with weights) are loaded strictly: a missing, unexpected or mis-shaped
    weight is a UserError naming the folder and the part (kwargs' `subfolder`)."""
    path = Path(name).expanduser()
    if path.exists() and not path.is_dir():
        raise UserError(f"{what} {name!r} is a file; give a hub id or a model folder")
    if not path.exists() and (path.is_absolute() or name.startswith((".", "~"))):
        raise UserError(f"{what} folder {name!r} does not exist")  # a path, not a hub id
    source = str(path) if path.is_dir() else name
    part = kwargs.get("subfolder", "")
    weights = strict and _has_weights(cls)
    if weights:
        kwargs["output_loading_info"] = True
    _quiet_loading()
    try:
        with BUILDING:
            try:
                loaded = cls.from_pretrained(source, local_files_only=True, **kwargs)
            except (OSError, ValueError):
                if path.is_dir() or not hub_reachable():
                    raise
                loaded = cls.from_pretrained(source, **kwargs)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        text = str(exc).strip()
        reason = text.splitlines()[0][:200] if text else type(exc).__name__
        if path.is_dir():
            where = f"{what} folder {name!r}" + (f" ({part})" if part else "")
            raise UserError(f"{where} is not a usable model: {reason}") from None
        if isinstance(exc, RuntimeError):
            raise UserError(
                f"{what} {name!r} ({part or 'model'}) could not load: {reason}"
            ) from None
        cache = os.environ.get("HF_HOME", "~/.cache/huggingface")
        raise UserError(
            f"{what} {name!r} is not in the Hugging Face cache ({cache}) and could not be "
            "downloaded: connect to the internet once, pass a local folder, or set HF_HOME "
            "to a cache that has it"
        ) from None
    if not weights:
        return loaded
    model, info = loaded
    _check_weights(model, info, name, what, part)
    return model


def _has_weights(cls) -> bool:
    """diffusers models and transformers models report their loading; tokenizers, schedulers
    and processors have no weights to check."""
    names = {base.__name__ for base in cls.__mro__}
    return bool(names & {"ModelMixin", "PreTrainedModel", "_BaseAutoModelClass"})


class DiffusersConfig:
    """A diffusers model folder's config.json, loaded like a model (cache first, then the hub),
    to learn the class it names."""

    @staticmethod
    def from_pretrained(source: str, **kwargs) -> dict:
        from diffusers import AutoencoderKL  # any model class: all read config.json

        return AutoencoderKL.load_config(source, **kwargs)
