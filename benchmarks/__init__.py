"""``python -m benchmarks``: the framework's training loop against hand-written
floors (``loops``), plus start-up, peak and sweep timings (``measure``); ``cli`` prints them.
"""

from benchmarks.cli import main

__all__ = ["main"]
