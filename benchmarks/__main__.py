"""``python -m benchmarks``: see ``cli``."""

from benchmarks.cli import main

if __name__ == "__main__":
    main()
