"""Write tiny random-weight models as ordinary save_pretrained folders.

    python scripts/make_tiny_models.py OUT
    stereoconv image in.png out.png --model OUT/sd --depth-model OUT/depth-anything

Their output is noise by design: they prove that the whole pipeline runs, not its quality.
"""

import sys

from stereoconv.testing import make_all

if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    for name, path in make_all(sys.argv[1]).items():
        print(f"{name}: {path}")
