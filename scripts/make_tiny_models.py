"""Write tiny random-weight models as ordinary save_pretrained folders.

    python scripts/make_tiny_models.py OUT
    stereoconv image in.png out.png --model OUT/sd --depth-model OUT/depth-anything

Their output is noise by design: they prove that the whole pipeline runs, not its quality.
"""

import argparse

if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", metavar="OUT", help="folder to write the models in")
    args = parser.parse_args()
    from stereoconv.testing import make_all  # torch: after --help

    for name, path in make_all(args.out).items():
        print(f"{name}: {path}")
