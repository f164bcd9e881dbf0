"""`python -m histocnn ...`: the same command-line interface as the `histocnn` executable."""
import sys

from ._loader import _histocnn


def main() -> int:
    return _histocnn.cli_main(["histocnn", *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
