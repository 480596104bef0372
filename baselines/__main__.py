"""The registered methods, comma-separated, for the Makefile's sweeps.

    python -m baselines --supports cnn vit   # the methods of every family: gradcam,gradcampp,...,cluscam
    python -m baselines --supports vit --lacks cnn   # the ViT-only ones: agcam
"""
from __future__ import annotations

import argparse
from typing import Sequence

from baselines import method_names


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--supports", nargs="*", default=[], metavar="FAMILY",
                        help="only the methods that explain every one of these model families")
    parser.add_argument("--lacks", nargs="*", default=[], metavar="FAMILY",
                        help="only the methods that explain none of these model families")
    args = parser.parse_args(argv)
    print(",".join(method_names(args.supports, args.lacks)))


if __name__ == "__main__":
    main()
