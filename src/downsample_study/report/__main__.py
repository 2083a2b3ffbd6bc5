"""``python -m downsample_study.report``: see ``cli``."""

import sys

from downsample_study.report.cli import main

if __name__ == "__main__":
    sys.exit(main())
