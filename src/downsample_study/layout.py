"""Every file and folder name of a job and of a sweep; each file's writer says what it holds."""

from __future__ import annotations

import hashlib

# --- a job's folder ---------------------------------------------------------------------------
RESULTS_FILE = "results.json"  # its outcome (results.py)
EPOCHS_FILE = "epochs.csv"  # one row per epoch
CHECKPOINTS = "checkpoints"  # last.ckpt, best-epoch<N>.ckpt, and *.broken: those set aside
LAST = "last.ckpt"  # every epoch, and where a stopped job stopped
BEST_PREFIX = "best-epoch"  # best-epoch<N>.ckpt: the selected one, epoch N counted from 1
BROKEN = ".broken"  # the suffix of a checkpoint set aside because it does not load
EVALUATION_FILE = "evaluation.json"  # what mode=eval writes into its own folder
HYDRA_DIR = ".hydra"  # Hydra's record of the job: its composed config and overrides
CONFIG_FILE = f"{HYDRA_DIR}/config.yaml"
OVERRIDES_FILE = f"{HYDRA_DIR}/overrides.yaml"
LOCK_FILE = ".lock"  # held by the process running the job
RUN_ID_FILE = ".run_id"  # its tracker run id, the same for every attempt
WANDB_DIR, CSV_DIR, TENSORBOARD_DIR = "wandb", "csv", "tensorboard"  # the trackers' runs
SUPERSEDED = "wandb-superseded"  # earlier attempts' offline W&B runs
# the trackers' folders, which keep copies of a job's files
TRACKER_FOLDERS = frozenset({WANDB_DIR, SUPERSEDED, CSV_DIR, TENSORBOARD_DIR})

# --- a sweep's folder -------------------------------------------------------------------------
SWEEP_FILE = "multirun.yaml"  # the sweep's composed config: its plan
TUNING_DIR = "tuning"  # tuning/<variant>/trial<N>/: a learning-rate study's trials
BEST_FILE = "best.yaml"  # tuning/<variant>/best.yaml: the study's outcome
PACKS_DIR = "packs"  # packs/<id>/: a pack's own log and checkpoint
SLOTS_DIR = ".slots"  # the slots of jobs side by side: slot-<i> and claim.lock
SLOT_FILE, CLAIM_FILE = "slot-{}", "claim.lock"
STOPPED_FILE = ".stopped"  # .stopped-<run of the sweep>: that run was stopped by this signal
REPORT_FILE, TABLE_FILE, COMPARISONS_FILE = "report.md", "results.csv", "comparisons.csv"
LATEX_FILE = "tables.tex"  # the report's tables for a paper (booktabs)
PLOTS = {"differences": "differences.png", "accuracy": "accuracy.png",
         "params": "accuracy_vs_params.png", "shift": "accuracy_vs_shift.png",
         "curves": "val_curves.png",
         # the evaluations': accuracy at each shift per fill, accuracy against robustness
         # (worst-case shift, mCE) and under attack against the budget
         "shift_grid_circular": "shift_grid_circular.png",
         "shift_grid_zero": "shift_grid_zero.png", "tradeoffs": "accuracy_vs_robustness.png",
         "attacks": "accuracy_vs_epsilon.png"}
TUNING_PLOT = "lr_tuning.png"

MAX_DIR_NAME = 150


def best_checkpoint_name(epoch: int) -> str:
    return f"{BEST_PREFIX}{epoch}.ckpt"


def shorten(name: str, limit: int) -> str:
    """``name`` cut to ``limit`` characters, kept unique with a hash of the whole."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:10]
    return f"{name[: limit - 11]}-{digest}"


def job_dir_name(override_dirname: str) -> str:
    """A job's folder inside a sweep: its overrides, so a re-run maps to the same folder (long
    names cut, kept unique by a hash: file names stop at 255)."""
    return shorten(override_dirname.replace("/", "_") or "default", MAX_DIR_NAME)
