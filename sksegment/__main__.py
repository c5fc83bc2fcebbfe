"""``python -m sksegment``: the command line (see ``sksegment --help``)."""

from ._cli import main

if __name__ == "__main__":
    raise SystemExit(main())
