"""``python -m benchmarks``: the framework's training loop against hand-written
floors (``loops``), plus start-up, peak and sweep timings (``measure``) and a whole study
against a hand-written script (``study``, ``plain_study``); ``cli`` prints them.
"""

from benchmarks.cli import main

__all__ = ["main"]
