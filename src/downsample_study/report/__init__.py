"""``python -m downsample_study.report SWEEP``: a sweep's jobs turned into a verdict.

Jobs are grouped into variants (a configuration apart from the seed), each compared with its
baselines. Failed and never-started jobs are listed, never dropped: they are findings too.
"""
