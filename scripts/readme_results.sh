#!/usr/bin/env bash
# Re-measure the README's result tables on the real MNIST / FashionMNIST (../shared/data by
# default): the seed 000 and seed 002 presets and the operator comparison, each a sweep of
# variants × 3 seeds run two jobs at a time (hydra/launcher=parallel), then its report.
#   scripts/readme_results.sh [PRESET ...]        # default: seed000 seed002 operators
# Sweeps go to multirun/readme/<preset>/; a re-run finishes only what is missing there.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_DIR=$(realpath "${DATA_DIR:-../shared/data}")
PY=${PY:-.venv/bin/python}
for preset in "${@:-seed000 seed002 operators}"; do
    for name in $preset; do
        sweep=multirun/readme/$name
        start=$(date +%s)
        "$PY" -m downsample_study -m "experiment=$name" hydra/launcher=parallel \
            "paths.data_dir=$DATA_DIR" "hydra.sweep.dir=$sweep"
        echo "$name: sweep took $(( $(date +%s) - start )) s"
        "$PY" -m downsample_study.report "$sweep"
    done
done
