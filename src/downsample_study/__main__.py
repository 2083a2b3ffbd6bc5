"""``python -m downsample_study``: see ``cli``."""

from downsample_study.cli import main

if __name__ == "__main__":
    main()
