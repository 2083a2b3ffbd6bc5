"""downsample_study: what the downsampling step of a small CNN buys you, with evidence.

The command line is ``python -m downsample_study`` (``cli``, which runs ``task`` for each
job); ``job.build_job`` is the one composition root. The wings of the package: ``config``
(schema, ConfigStore, checks), ``nets`` (operators, models, shapes), ``data``, ``training``
(LightningModule, Trainer, optimizers, loggers), ``analysis`` (shift robustness, feature
maps), ``sweeps`` (names, launchers, slots, summary), ``report`` and ``bench``. On the ground
floor: ``errors``, ``choices``, ``registry``, ``results`` and ``provenance``; every touch of
a library's internals is in ``internals``.
"""
