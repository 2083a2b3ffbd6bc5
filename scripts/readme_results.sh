#!/usr/bin/env bash
# Re-measure the README's result tables on the real MNIST / FashionMNIST (the folder DATA_DIR
# points to): the seed presets and the operator comparison, each a sweep of variants × 10 seeds (one pack per variant or two)
# run two jobs at a time (hydra/launcher=parallel), then its report.
#   DATA_DIR=/path/to/data scripts/readme_results.sh [PRESET ...]   # default: all of them
# Sweeps go to multirun/readme/<preset>/; a re-run finishes only what is missing there. Each
# report (markdown, CSV, PNG and SVG plots) is then copied to docs/results/<preset>/.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_DIR=$(realpath "${DATA_DIR:?set DATA_DIR to the folder that holds MNIST/ and FashionMNIST/}")
PY=${PY:-.venv/bin/python}
declare -A OVERRIDES=(
    [seed000]=""
    [seed001]="dataset=mnist,fashion_mnist"   # no CIFAR-10 copy where these were measured
    [seed002]=""
    [operators]=""
)
for name in "${@:-seed000 seed001 seed002 operators}"; do
    for preset in $name; do
        [[ -v "OVERRIDES[$preset]" ]] || { echo "unknown preset $preset" >&2; exit 2; }
        sweep=multirun/readme/$preset
        start=$(date +%s)
        # shellcheck disable=SC2086  # the overrides are words
        "$PY" -m downsample_study -m "experiment=$preset" ${OVERRIDES[$preset]} \
            hydra/launcher=parallel "paths.data_dir=$DATA_DIR" "hydra.sweep.dir=$sweep"
        echo "$preset: sweep took $(( $(date +%s) - start )) s"
        "$PY" -m downsample_study.report "$sweep"
        rm -rf "docs/results/$preset" && mkdir -p "docs/results/$preset"
        cp "$sweep"/{report.md,results.csv,comparisons.csv} "$sweep"/*.png "$sweep"/*.svg \
            "docs/results/$preset/"
    done
done
