"""What a job's folder holds, by name (each file's writer documents it):

- ``results.json``: the outcome (``results.py``); ``epochs.csv``: one row per epoch;
- ``checkpoints/``: ``last.ckpt`` (every epoch, and where a stopped job stopped) and
  ``best-epoch<N>.ckpt`` (the selected one); ``*.broken``: set aside, they did not load;
- ``feature_maps.png``; ``downsample_study.log``; ``.hydra/``: the composed config;
- ``.lock``: held by the process running the job; ``.run_id``: its tracker run id;
- ``wandb/``, ``wandb-superseded/`` (earlier attempts), ``csv/``, ``tensorboard/``.
"""

CHECKPOINTS = "checkpoints"
EPOCHS_FILE = "epochs.csv"
LAST = "last.ckpt"
