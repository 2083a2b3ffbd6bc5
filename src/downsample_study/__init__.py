"""downsample_study: what the downsampling step of a small CNN buys you, with evidence.

The command line is ``python -m downsample_study`` (``cli``); ``job.build_job`` is the one
composition root. The Python API: ``load_run``, ``load_sweep``, ``compose`` and
``swap_downsampling`` (any network's points to an operator). Every touch of a library's
internals is in ``internals``.
"""

__all__ = ["Run", "compose", "load_run", "load_sweep", "swap_downsampling"]


_HOMES = {"Run": "job.finished", "load_run": "job.finished", "compose": "runs",
          "load_sweep": "runs", "swap_downsampling": "nets.surgery"}


def __getattr__(name: str):
    # imported when first used: the command line imports this package before torch (cli.py)
    if name in _HOMES:
        import importlib

        return getattr(importlib.import_module(f"downsample_study.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'downsample_study' has no attribute {name!r}")


def __dir__() -> list[str]:
    # the API's names too, unimported: a notebook's tab completion offers them
    return sorted({*globals(), *__all__})
