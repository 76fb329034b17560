"""``python -m bench.peers``: see :mod:`bench.peers.cli`."""

import sys

from bench.peers.cli import main

if __name__ == "__main__":
    sys.exit(main())
