"""Where the tests find the project and ../shared, wherever a test module sits."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the project: tests/helpers/paths.py
SHARED = ROOT.parent / "shared"  # data that cannot be committed, beside the project
