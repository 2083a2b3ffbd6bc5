"""The seeds (and the operator study) as presets: each composes into a sweep over its
variants × 10 seeds, every variant of it is a valid configuration with the seed's protocol,
and its short version runs and reports."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from support import REAL_DATA, launch, results_under

from downsample_study.config.hydra_versions import VERSION_BASE
from downsample_study.config.store import CONFIG_DIR, register_configs
from downsample_study.config.validate import validate
from downsample_study.nets.operators import available_downsamples
from downsample_study.report.build import write_report
from downsample_study.sweeps.plan import sweep_jobs

register_configs()

# preset → (variants, what every job shares, what distinguishes the variants)
PRESETS = {
    "seed000": (4, {"dataset.name": "mnist", "dataset.batch_size": 64,
                    "trainer.max_epochs": 10, "optimizer.name": "adam"},
                ("model.name", "downsample.name")),
    "seed001": (6, {"model.name": "lenet_gap", "downsample.batch_norm": True,
                    "downsample.dropout": 0.4, "trainer.max_epochs": 10},
                ("dataset.name", "downsample.name")),
    "seed002": (2, {"dataset.name": "fashion_mnist", "model.name": "lenet5_classic",
                    "dataset.batch_size": 256, "trainer.max_epochs": 20},
                ("downsample.name", "optimizer.name", "model.conv_activation")),
    "seed004": (2, {"dataset.name": "cifar10", "model.name": "convpool3",
                    "dataset.batch_size": 128}, ("downsample.batch_norm",)),
    "aps_regime": (6, {"model.name": "lenet_gap", "model.padding_mode": "circular",
                       "trainer.max_epochs": 10}, ("dataset.name", "downsample.name")),
    "resnet20_operators": (len(available_downsamples()), {  # every operator
        "model.name": "resnet20", "dataset.name": "cifar10", "dataset.augment": True,
        "downsample.batch_norm": True, "optimizer.name": "sgd", "optimizer.lr": 0.1,
        "optimizer.weight_decay": 1e-4, "optimizer.scheduler.milestones": [91, 137],
        "trainer.max_epochs": 182}, ("downsample.name",)),
    "operators": (40, {"model.name": "lenet5", "dataset.batch_size": 128,
                       "trainer.max_epochs": 20, "optimizer.name": "adam"},
                  ("dataset.name", "downsample.name", "downsample.batch_norm")),
}
TUNED = {"operators"}  # each variant's learning rate tuned first (hydra/sweeper=tuned)


def composed(overrides: list[str], hydra: bool = False):
    with initialize_config_dir(str(CONFIG_DIR), **VERSION_BASE):
        return compose("config", overrides=overrides, return_hydra_config=hydra)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_preset_composes_into_variants_times_ten_seeds(preset, data_dir):
    variants, shared, varied = PRESETS[preset]
    config = composed([f"experiment={preset}"], hydra=True)
    hydra = config.hydra
    assert hydra.sweep.dir.startswith(f"multirun/{preset}/")
    assert hydra.sweeper.params["seed"] == "range(10)"
    # each variant's seeds packed (after its learning rate is tuned)
    sweeper = "TunedSweeper" if preset in TUNED else "PackedSweeper"
    assert hydra.sweeper._target_.endswith(sweeper)
    jobs = sweep_jobs(config)
    assert len(jobs) == variants * 10

    seen = set()
    for job in (j for j in jobs if "seed=0" in j):  # every variant once
        cfg = composed([*job, f"paths.data_dir={data_dir}"])
        validate(cfg.copy())  # every job is a valid configuration
        for key, value in shared.items():
            assert OmegaConf.select(cfg, key) == value, (job, key)
        seen.add(tuple(OmegaConf.select(cfg, key) for key in varied))
    assert len(seen) == variants


def test_seed002_posted_variant_is_the_posts_protocol(data_dir):
    cfg = composed(["experiment=seed002", "variant=seed002_posted"])
    assert cfg.downsample.name == "avgpool" and cfg.model.conv_activation == "none"
    assert cfg.optimizer.name == "sgd" and cfg.optimizer.lr == 0.01
    assert cfg.optimizer.momentum == 0.0  # torch.optim.SGD(lr=0.01), as in the post


@pytest.mark.slow
@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_short_version_runs_and_reports(preset, quick, tmp_path):
    variants = PRESETS[preset][0]
    # seed=0 on the command line replaces the preset's seeds: one job per variant (and for
    # seed 001 one dataset, CIFAR-10, instead of three: all of them compose above)
    # the study: one dataset, no BatchNorm, two operators (all of them compose above), at
    # lr 1e-3 (tests/test_tuning.py tunes)
    narrowed = {"seed001": ["dataset=cifar10"], "aps_regime": ["dataset=mnist"],
                "resnet20_operators": ["downsample=stride2_fold,aps"],
                "operators": ["dataset=mnist", "downsample.batch_norm=false",
                              "downsample=maxpool,aps", "hydra.sweeper.lr.trials=0"]
                }.get(preset, [])
    variants = {"seed001": variants // 3, "operators": 2, "resnet20_operators": 2,
                "aps_regime": variants // 2}.get(preset, variants)
    run = launch(["-m", f"experiment={preset}", *quick, "seed=0", *narrowed, "logger=csv",
                  "trainer.limit_train_batches=3", "evaluation.feature_maps.enabled=false",
                  "hydra.sweep.dir=sweep"])
    assert run.exit_code == 0
    report = write_report(tmp_path / "sweep", use_wandb=False)
    assert len(report.variants) == variants and not report.unfinished
    assert all(v.seeds == [0] for v in report.variants)
    # every non-baseline variant is compared with a baseline (n = 1: difference, no test)
    assert report.comparisons and all(c.test == "none" for c in report.comparisons)
    text = (tmp_path / "sweep" / "report.md").read_text()
    assert f"{variants} jobs: {variants} completed, 0 failed, 0 not run" in text


@pytest.mark.parametrize(("operator", "invariant"),
                         [("aps", True), ("maxpool", False), ("stride2_fold", False)])
def test_in_the_aps_regime_only_aps_logits_are_invariant_to_circular_shifts(
    operator, invariant, data_dir
):
    """Circular padding and global average pooling: every APS point picks its phase by the
    content, so no circular shift changes a logit, before any training (Chaman & Dokmanić
    2021's claim); max pooling and the folded stride in the same network do not."""
    import torch

    from downsample_study.evaluations.shift import shift_images
    from downsample_study.nets.models import build_model

    settings = validate(composed(["experiment=aps_regime", f"downsample={operator}",
                                  f"paths.data_dir={data_dir}"]))
    torch.manual_seed(0)
    net = build_model(settings.model, settings.downsample, (1, 28, 28), 10).double().eval()
    x = torch.randn(16, 1, 28, 28, dtype=torch.float64)
    logits = net(x)
    moved = max((net(shift_images(x, torch.tensor([[dy, dx]] * 16), "circular")) - logits)
                .abs().max().item() for dy in range(-3, 4) for dx in range(-3, 4))
    assert (moved < 1e-9) == invariant, moved


@pytest.mark.slow
@pytest.mark.real_data
@pytest.mark.skipif(REAL_DATA is None or not (REAL_DATA / "MNIST").is_dir(),
                    reason=f"REAL_DATA_DIR={REAL_DATA} holds no MNIST")
def test_the_aps_regime_reaches_full_circular_consistency_on_real_mnist(tmp_path):
    run = launch(["-m", "experiment=aps_regime", f"paths.data_dir={REAL_DATA}",
                  f"paths.cache_dir={tmp_path / 'cache'}", "accelerator=cpu", "seed=0",
                  "dataset=mnist", "downsample=aps,maxpool", "logger=none",
                  "trainer.max_epochs=1", "trainer.limit_train_batches=100",
                  "evaluation.feature_maps.enabled=false", "hydra.sweep.dir=sweep"])
    assert run.exit_code == 0
    found = results_under(tmp_path / "sweep")
    shift = {r["config"]["downsample"]["name"]: r["evaluations"]["shift"]["details"]
             for r in found}
    consistency = {name: details["circular"]["consistency"] for name, details in shift.items()}
    assert consistency["aps"] == 1.0 and consistency["maxpool"] < 1.0
    # both networks are in the regime: invariant to circular shifts by their stride of 4
    assert [d["regime"] for d in shift.values()] == [{"stride": 4, "invariant": True}] * 2
