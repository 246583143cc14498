"""The photo library's manifest: OUT_DIR's record of each output stereoconv wrote (its input, the
input's SHA-256, a hash of the settings and the output's own SHA-256), read and written
atomically."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from stereoconv.errors import UserError
from stereoconv.fileio import atomic_output

MANIFEST = ".stereoconv-manifest.json"
MANIFEST_VERSION = 1


def settings_hash(settings: dict[str, Any]) -> str:
    text = json.dumps(settings, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_manifest(out_dir: Path) -> dict[str, Any]:
    """The manifest of OUT_DIR, less the records of outputs that are gone; empty if none."""
    path = out_dir / MANIFEST
    empty = {"stereoconv_manifest": MANIFEST_VERSION, "settings": {}, "outputs": {}}
    if not path.exists():
        return empty
    try:
        manifest = json.loads(path.read_text())
        outputs = manifest["outputs"]
        manifest.setdefault("settings", {})
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        why = f"{path} is not a stereoconv manifest; move it away to start over"
        raise UserError(why) from None
    manifest["outputs"] = {k: v for k, v in outputs.items() if (out_dir / k).is_file()}
    return manifest


def save_manifest(out_dir: Path, manifest: dict[str, Any]) -> None:
    """Write the manifest atomically, keeping only the settings that some output uses."""
    used = {record["settings"] for record in manifest["outputs"].values()}
    settings = {k: v for k, v in manifest["settings"].items() if k in used}
    text = json.dumps({**manifest, "settings": settings}, indent=1, sort_keys=True)
    with atomic_output(out_dir / MANIFEST) as tmp:
        tmp.write_text(text + "\n")
