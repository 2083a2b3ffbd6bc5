"""``python -m downsample_study.bench``: the framework's training loop against hand-written
floors (``loops``), plus start-up, peak and sweep timings (``measure``); ``cli`` prints them.
"""

from downsample_study.bench.cli import main

__all__ = ["main"]
