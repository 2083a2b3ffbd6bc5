"""Weights & Biases: online with credentials, else offline; one run per job, whatever the attempts.

Every attempt logs to the run id kept in the job folder; online it resumes that run. Offline
wandb cannot resume, so earlier attempts' runs move to ``wandb-superseded/`` and their epochs
are logged again: ``wandb/offline-run-*`` is then one complete run for ``wandb sync``.
"""

from __future__ import annotations

import logging
import netrc
import os
import shutil
from pathlib import Path
from urllib.parse import urlparse

from lightning.pytorch.loggers import WandbLogger

from downsample_study import internals
from downsample_study.errors import ConfigError, first_line
from downsample_study.layout import (
    CHECKPOINTS,
    EPOCHS_FILE,
    LAST,
    RESULTS_FILE,
    SUPERSEDED,
    WANDB_DIR,
)
from downsample_study.training.configs import LOGGERS, WandbConfig, WandbMode
from downsample_study.training.tracking import (
    RunIdentity,
    Tracker,
    log_epoch_rows,
    summary_metrics,
)

log = logging.getLogger(__name__)



DEFAULT_PROJECT = "downsample_study"


def wandb_project(cfg: WandbConfig) -> str:
    return cfg.project or os.environ.get("WANDB_PROJECT") or DEFAULT_PROJECT


def wandb_has_credentials() -> bool:
    """True when W&B could log in without asking: an API key in the env or in ~/.netrc."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        return netrc.netrc().authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def wandb_mode(cfg: WandbConfig) -> str:
    if cfg.mode != WandbMode.auto:
        return cfg.mode.value
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    return "online" if wandb_has_credentials() else "offline"


def settings_refused(err: Exception) -> ConfigError | None:
    """``wandb.init``'s refusal of a setting — most often a ``WANDB_*`` environment variable
    (``WANDB_MODE=bogus``) — as one line naming it; None for any other failure."""
    from wandb.errors import UsageError

    try:
        from pydantic import ValidationError  # wandb's settings are a pydantic model
    except ImportError:  # a wandb without pydantic: its refusals are its own errors
        ValidationError = None
    if ValidationError is not None and isinstance(err, ValidationError):
        refused = []
        for error in err.errors():
            field = ".".join(map(str, error["loc"]))
            variable = f"WANDB_{field.upper()}"
            where = f" (from {variable} in the environment)" if variable in os.environ else ""
            refused.append(f"{field}={error['input']!r}{where}: {error['msg']}")
        return ConfigError(f"W&B refused its settings: {'; '.join(refused)}")
    if isinstance(err, UsageError):
        return ConfigError(f"W&B refused its settings: {err}")
    return None


def _offline_advice(output_dir: Path) -> str:
    return (f"logging offline to {output_dir}/wandb; upload later with: wandb sync "
            f"{output_dir}/{WANDB_DIR}/offline-run-*")


def supersede(output_dir: Path, pattern: str = "offline-run-*") -> None:
    """Move the run folders of earlier attempts (offline ones by default) out of ``wandb/``."""
    runs = sorted((Path(output_dir) / WANDB_DIR).glob(pattern))
    if runs:
        aside = Path(output_dir) / SUPERSEDED
        aside.mkdir(exist_ok=True)
        for run in runs:
            shutil.move(str(run), aside / run.name)


class CheckpointsWandbLogger(WandbLogger):
    """A ``WandbLogger`` that knows whether checkpoints go to W&B (``logger.wandb.log_model``): the
    selection is the framework's own, so the tracker logs them, not Lightning's hook."""

    def __init__(self, *, checkpoints: bool | str = False, **kwargs):
        super().__init__(**kwargs)
        self.checkpoints = checkpoints


class WandbTracker(Tracker):
    def _logger(self, cfg: WandbConfig, run: RunIdentity, output_dir: Path,
                mode: str) -> WandbLogger:
        import wandb

        if mode == "offline":
            supersede(output_dir)
        env_tags = [t for t in os.environ.get("WANDB_TAGS", "").split(",") if t.strip()]
        arguments = dict(
            project=wandb_project(cfg),
            entity=cfg.entity,
            name=run.name,
            group=cfg.group or os.environ.get("WANDB_RUN_GROUP") or run.group,
            job_type=cfg.job_type or os.environ.get("WANDB_JOB_TYPE") or run.job_type,
            tags=sorted({*run.tags, *cfg.tags, *(t.strip() for t in env_tags)}),
            save_dir=str(output_dir),
            mode=mode,
            id=run.run_id,
            resume="allow" if mode == "online" else None,
            # console "wrap": what the job prints, its errors too, is in the run
            settings=wandb.Settings(silent=True, console="wrap", init_timeout=cfg.init_timeout,
                                    # a pack's members: one run each, open side by side
                                    **({"reinit": "create_new"} if run.alongside else {})),
        )
        logger = CheckpointsWandbLogger(checkpoints=cfg.log_model, **{**arguments, **cfg.options})
        internals.drop_wandb_anonymous_setting(logger)
        return logger

    def create(self, cfg: WandbConfig, run, output_dir):
        mode = wandb_mode(cfg)
        if cfg.mode == WandbMode.auto and mode == "offline" and not os.environ.get("WANDB_MODE"):
            log.warning("W&B: no credentials found (WANDB_API_KEY or `wandb login`), %s",
                        _offline_advice(output_dir))
        logger = self._logger(cfg, run, output_dir, mode)
        if mode != "online":
            return logger
        try:
            logger.experiment  # noqa: B018 - wandb.init: reach the server now
        except Exception as err:  # wandb's CommError, or whatever stops the connection
            import wandb

            if (refused := settings_refused(err)) is not None:  # offline would refuse it too
                raise refused from None

            reason = first_line(err)
            log.warning("W&B: cannot reach the server (%s), %s", reason,
                        _offline_advice(output_dir))
            wandb.teardown()  # its service still holds the run id the failed attempt claimed
            supersede(output_dir, f"run-*-{run.run_id}")  # what the failed attempt wrote
            logger = self._logger(cfg, run, output_dir, "offline")
        return logger

    def log_params(self, logger, params):
        try:
            super().log_params(logger, params)  # wandb.init, where the run was not begun yet
        except Exception as err:
            if (refused := settings_refused(err)) is not None:
                raise refused from None
            raise

    def finish(self, logger, exit_code):
        logger.experiment.finish(exit_code=exit_code)

    def log_figure(self, logger, name, figure, path, step):
        logger.log_image(name, [str(path)], step=step)

    def log_summary(self, logger, results, output_dir):
        run = logger.experiment
        for key, value in summary_metrics(results).items():
            run.summary[key] = value
        for name in (RESULTS_FILE, EPOCHS_FILE):  # saved with the run
            if (Path(output_dir) / name).is_file():
                # copied into the run's files first: save() of a file outside them links it
                # and warns on the console about the link, for every job
                kept = Path(run.dir) / name
                shutil.copyfile(Path(output_dir) / name, kept)
                run.save(str(kept), base_path=run.dir, policy="now")
        if logger.checkpoints is True:  # the last and the selected one, at the end
            last = Path(output_dir) / CHECKPOINTS / LAST
            for path, selected in ((last, False), (Path(results.checkpoint or ""), True)):
                if path.is_file():
                    self._log_checkpoint(logger, path, selected)

    def checkpoint_saved(self, logger, path, selected):
        if logger.checkpoints == "all":
            self._log_checkpoint(logger, path, selected)

    @staticmethod
    def _log_checkpoint(logger: CheckpointsWandbLogger, path: Path, selected: bool) -> None:
        import wandb

        run = logger.experiment
        artifact = wandb.Artifact(f"model-{run.id}", type="model", metadata={"file": path.name})
        artifact.add_file(str(path), name="model.ckpt")
        run.log_artifact(artifact, aliases=["best"] if selected else ["latest"])

    def replay(self, logger, rows):
        if logger.experiment.offline:  # online, the resumed run has them
            log_epoch_rows(logger, rows)

    def run_settings(self, logger):
        run = logger.experiment
        return {"mode": "offline" if run.offline else "online", "project": run.project,
                "entity": run.entity, "group": run.group}

    def describe(self, logger):
        run = logger.experiment
        if run.offline:
            folder = Path(run.dir).parent
            return f"W&B offline run {folder} (upload: wandb sync {folder})"
        return f"W&B run {run.url}"


LOGGERS.add("wandb", WandbTracker())
