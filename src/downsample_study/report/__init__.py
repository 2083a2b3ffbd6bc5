"""``python -m downsample_study.report SWEEP``: a sweep's jobs turned into a verdict.

Reads every job's ``results.json`` (and ``epochs.csv``) under the folder (``jobs``), groups
them into variants (``variants``: a configuration apart from the seed; mean, standard
deviation and a Student-t 95 % confidence interval over its seeds, ``statistics``), compares
each with its baselines (``comparisons``: a paired t-test when both sides ran the same seeds,
Welch's otherwise) and writes into the folder ``report.md``, ``results.csv``,
``comparisons.csv`` (``tables``) and the plots (``plots``). Failed jobs, job folders without
results and (for Hydra's basic sweeper) jobs of the sweep that never started are listed, never
dropped. When the jobs logged to W&B the report is logged too, as a ``report`` run in the
sweep's group (``tracking``).
"""
