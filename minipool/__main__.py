"""``python -m minipool <command>``: see ``python -m minipool --help``."""
import sys

from minipool.cli import main

if __name__ == "__main__":
    sys.exit(main())
