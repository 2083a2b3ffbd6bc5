"""``python -m downsample_study.bench``: see ``cli``."""

from downsample_study.bench.cli import main

if __name__ == "__main__":
    main()
