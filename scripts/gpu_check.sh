#!/usr/bin/env bash
# The GPU path in one prepared run, for the GPU machine this project is lent now and then (one
# H100 or H200, no network, a Python 3.12 with torch and Lightning; 15 minutes in all).
#
#   bash scripts/gpu_check.sh --prepare      # here: wheels and MNIST into .gpu_check/ (ignored)
#   bash scripts/gpu_check.sh                # there, from the repository root, .gpu_check carried
#   GPU_CHECK_STEPS="bench preset" bash scripts/gpu_check.sh        # those steps alone, again
#   GPU_CHECK_DEVICE=cpu GPU_CHECK_QUICK=1 DATA_DIR=... bash scripts/gpu_check.sh   # rehearsal
#
# Each step runs under a time limit of its own, all of them within GPU_CHECK_SECONDS (480), logs
# unbuffered and prints one line. $OUT gets three files: summary.txt (those lines), steps.log
# (every step's log) and runs.tar.gz (the run folders, no checkpoints), rewritten after each
# step; the runs themselves live in GPU_CHECK_WORK (/tmp/gpu_check), outside $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
HERE=.gpu_check

if [ "${1:-}" = "--prepare" ]; then
    set -e
    PY=${PYTHON:-.venv/bin/python}  # the checkout's environment: its versions are the ones tested
    rm -rf "$HERE"  # nothing stale travels
    "$PY" scripts/gpu_wheels.py prepare "$HERE/wheels"
    mkdir -p "$HERE/data/MNIST/raw"
    cp "${REAL_DATA:-../shared/data}"/MNIST/raw/*.gz "$HERE/data/MNIST/raw/"
    # what travels: the working tree git does not ignore, and the carried .gpu_check
    carry=$( (git ls-files -coz --exclude-standard | du -cb --files0-from=- | tail -n 1
              du -sb "$HERE") | awk '{s += $1} END {printf "%.1f", s / 2^20}')
    echo "carry: $carry MiB of the device's 64 (.gpu_check: $(du -sh "$HERE" | cut -f1))"
    awk "BEGIN {exit !($carry > 60)}" && { echo "carry over 60 MiB: too close to 64"; exit 1; }
    exit 0
fi

export PY=${PYTHON:-python3} DEVICE=${GPU_CHECK_DEVICE:-cuda} QUICK=${GPU_CHECK_QUICK:-0}
export WORK=${GPU_CHECK_WORK:-/tmp/gpu_check} DATA_DIR=${DATA_DIR:-$PWD/$HERE/data}
export ACCEL=$([ "$DEVICE" = cuda ] && echo gpu || echo cpu) WHEELS=$PWD/$HERE/wheels
export SITE=$WORK/install  # what the device lacks, from the carried wheels
export PYTHONPATH="$SITE:$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 WANDB_MODE=offline WANDB_SILENT=true
# in the order they run: what a lent device must answer first comes first
ALL="install versions tests preset bench ddp cifar sweep_parallel sweep_sequential bench_compiled"
STEPS=" ${GPU_CHECK_STEPS:-$ALL} "
SECONDS_IN_ALL=${GPU_CHECK_SECONDS:-480}
DEADLINE=$(( $(date +%s) + SECONDS_IN_ALL ))
OUTDIR=${OUT:-$HERE/out}
mkdir -p "$OUTDIR" "$WORK/logs"
for name in $STEPS; do
    [[ " $ALL " == *" $name "* ]] || { echo "GPU_CHECK_STEPS: no step $name (steps: $ALL)"; exit 2; }
done
FAILED=0

report() { echo "$*" | tee -a "$OUTDIR/summary.txt"; }
archive() {
    tar -czf "$OUTDIR/runs.tar.gz" --exclude='*.ckpt' --exclude=./install \
        --exclude=./cifar/data -C "$WORK" .
}

# step NAME LIMIT COMMAND...: run it if GPU_CHECK_STEPS names it, for at most LIMIT seconds (less
# if the check's time is running out), in a fresh $WORK/NAME; its log is kept, and one line says
# how it went
step() {
    local name=$1 limit=$2 status start seconds
    shift 2
    [[ "$STEPS" == *" $name "* ]] || return 0
    local left=$(( DEADLINE - $(date +%s) - 10 ))
    if (( left < 10 )); then
        FAILED=1
        report "step $name: NOT RUN, the check's $SECONDS_IN_ALL s are spent"
        return 0
    fi
    (( limit > left )) && limit=$left
    rm -rf "${WORK:?}/$name"  # a rerun starts over, not from what an earlier run left
    start=$(date +%s.%N)
    timeout --kill-after=5 "$limit" bash -c '"$@"' _ "$@" > "$WORK/logs/$name.log" 2>&1
    status=$?
    seconds=$(awk "BEGIN {printf \"%.1f\", $(date +%s.%N) - $start}")
    { echo "==== step $name: exit $status, $seconds s"; cat "$WORK/logs/$name.log"; } \
        >> "$OUTDIR/steps.log"
    local last
    last=$(tail -n 3 "$WORK/logs/$name.log" | tr '\n' ' ' | cut -c1-300)
    if [ $status -eq 0 ]; then
        report "step $name: ok ($seconds s) $(summary "$name")"
    elif [ $status -eq 124 ] || [ $status -eq 137 ]; then
        FAILED=1
        report "step $name: TIMED OUT after $limit s: $last"
    else
        FAILED=1
        report "step $name: FAILED, exit $status ($seconds s): $last"
    fi
    archive
}

# the figures of a step's log worth its line
summary() {
    local log=$WORK/logs/$1.log
    case $1 in
        install|tests) tail -n 1 "$log" ;;
        versions) tail -n 2 "$log" | tr '\n' ' ' ;;
        bench*) grep -E '^(framework|packed)' "$log" | tr '\n' ' ' ;;
        preset) grep -E 'jobs with results|^wall time|^test top-1' "$log" \
                    | sed 's/.*: \([0-9]* jobs with results\)/\1/' | tr '\n' ' ' ;;
        sweep_*) grep -E 'jobs with results' "$log" | sed 's/.*: \([0-9]* jobs with results\)/\1/' ;;
        ddp|cifar) grep -E '^test, on' "$log" | cut -c1-120 ;;
    esac
}

install() {
    "$PY" scripts/gpu_wheels.py install "$WHEELS" "$SITE"
}

versions() {
    "$PY" - <<'EOF'
import os, sys
import lightning, torch
from downsample_study import internals
internals.skip_unloadable_nvml_probe()  # as every job: NVML answers, or CUDA's runtime is asked
name = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA device"
print(f"python {sys.version.split()[0]}, torch {torch.__version__} (CUDA {torch.version.cuda}, "
      f"cuDNN {torch.backends.cudnn.version()}), lightning {lightning.__version__}, {name}")
if torch.cuda.is_available():
    nvml = os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK") == "1"
    count = torch.cuda.device_count()  # what the parallel launcher asks before it forks
    if (pid := os.fork()) == 0:
        try:
            torch.zeros(1, device="cuda").sum().item()
            os._exit(0)
        except Exception:
            os._exit(1)
    forked_ok = os.waitpid(pid, 0)[1] == 0
    print(f"NVML {'answers' if nvml else 'does not load'}; {count} GPU(s) counted before a fork, "
          f"and a forked worker {'can' if forked_ok else 'CANNOT'} use CUDA")
else:
    print("no CUDA: fork probe skipped")
EOF
    command -v nvidia-smi > /dev/null && nvidia-smi \
        --query-gpu=name,compute_mode,memory.total,driver_version,clocks.max.sm --format=csv
    true
}

if [ "$QUICK" = 1 ]; then  # every step at its smallest, for the rehearsal on CPU
    SMALL=(dataset.val_size=100 dataset.eval_batch_size=100 dataset.verify_checksums=false)
    BENCH=(--batch-sizes 16 32 --steps 3 --rounds 1 --startup-runs 0 --pack-sizes 1 2
           --pack-steps 3 --set "${SMALL[@]}")
    COMPILED=(--batch-sizes 16 --steps 3 --rounds 1 --startup-runs 0 --pack-sizes
              --set "${SMALL[@]}" --variant compiled speed.compile=default)
    TRAIN=("${SMALL[@]}" trainer.max_epochs=1 trainer.limit_train_batches=4
           trainer.limit_val_batches=2 trainer.limit_test_batches=2
           evaluation.shift.enabled=false evaluation.feature_maps.enabled=false)
    PRESET=("${TRAIN[@]}" "seed=range(2)")
    CIFAR=(2000 500)
else
    BENCH=(--batch-sizes 64 256 --steps 100 --rounds 3 --startup-runs 1
           --pack-sizes 1 8 32 64 128 --pack-steps 100)
    COMPILED=(--batch-sizes 256 --steps 100 --rounds 1 --startup-runs 0 --pack-sizes
              --variant compiled speed.compile=default)
    TRAIN=(trainer.max_epochs=1 trainer.limit_train_batches=200)
    PRESET=()
    CIFAR=(10000 2000)
fi
export QUICK_TRAIN="${TRAIN[*]}" PRESET_ARGS="${PRESET[*]}" CIFAR_SIZES="${CIFAR[*]}"

# seed 000's preset as its users run it (40 jobs, 4 packs side by side), with the report, and
# its test accuracy next to the CPU figures of docs/results/seed000
preset() {
    local start
    start=$(date +%s.%N)
    # shellcheck disable=SC2086
    "$PY" -m downsample_study -m experiment=seed000 accelerator="$ACCEL" logger=none \
        paths.data_dir="$DATA_DIR" hydra.sweep.dir="$WORK/preset" hydra/launcher=parallel \
        parallel.jobs_per_gpu=4 $PRESET_ARGS || return
    echo "wall time of the preset: $(awk "BEGIN {printf \"%.1f\", $(date +%s.%N) - $start}") s"
    "$PY" -m downsample_study.report "$WORK/preset" > /dev/null || return
    "$PY" - "$WORK/preset/results.csv" docs/results/seed000/results.csv <<'EOF'
import sys
import pandas as pd
keys = ["model", "downsample"]
here, cpu = (pd.read_csv(path).set_index(keys) for path in sys.argv[1:])
rows = [f"{m}+{d} {here.test_top1_mean[m, d]:.2f} vs {cpu.test_top1_mean[m, d]:.2f}"
        for m, d in here.index if (m, d) in cpu.index]
print("test top-1 here vs the CPU study (%):", "; ".join(rows))
EOF
}

# a one-device DDP run: NCCL's start-up and the strategy's path, end to end
ddp() {
    local where=()
    [ "$DEVICE" = cuda ] || where=(trainer.accelerator=cpu)
    # shellcheck disable=SC2086
    "$PY" -m downsample_study accelerator=ddp trainer.devices=1 "${where[@]}" dataset=mnist \
        logger=none paths.data_dir="$DATA_DIR" hydra.run.dir="$WORK/ddp" $QUICK_TRAIN
}

# CIFAR-10's file format (the tests' writer) with augmentation on the device
cifar() {
    local sizes
    read -ra sizes <<< "$CIFAR_SIZES"
    "$PY" -c "import sys; from pathlib import Path; sys.path.insert(0, 'tests')
from support.datasets import write_cifar10
write_cifar10(Path('$WORK/cifar/data'), n_train=${sizes[0]}, n_test=${sizes[1]})" || return
    # shellcheck disable=SC2086
    "$PY" -m downsample_study accelerator="$ACCEL" dataset=cifar10 dataset.augment=true \
        dataset.verify_checksums=false model=convpool3 logger=none \
        paths.data_dir="$WORK/cifar/data" hydra.run.dir="$WORK/cifar/run" $QUICK_TRAIN
}

sweep() {
    # shellcheck disable=SC2086
    "$PY" -m downsample_study -m downsample=maxpool,avgpool,stride2,stride2_fold \
        accelerator="$ACCEL" logger=none paths.data_dir="$DATA_DIR" $QUICK_TRAIN "$@"
}
export -f install versions preset ddp cifar sweep

report "gpu check: steps${STEPS% }, ${SECONDS_IN_ALL} s in all, device $DEVICE$([ "$QUICK" = 1 ] \
    && echo ', quick')"
[ "$DEVICE" = cuda ] && step install 120 install
step versions 60 versions
step tests 180 "$PY" -m pytest -q -p no:cacheprovider -m cuda tests/test_gpu_check.py
step preset 200 preset
step bench 200 "$PY" -m benchmarks --device "$DEVICE" --dataset mnist --data-dir "$DATA_DIR" \
    "${BENCH[@]}" --variant bf16 trainer.precision=bf16-mixed \
    --variant channels_last speed.channels_last=true
step ddp 90 ddp
step cifar 90 cifar
step sweep_parallel 60 sweep hydra/launcher=parallel parallel.jobs_per_gpu=4 \
    hydra.sweep.dir="$WORK/sweep_parallel"
step sweep_sequential 90 sweep hydra.sweep.dir="$WORK/sweep_sequential"
step bench_compiled 150 "$PY" -m benchmarks --device "$DEVICE" --dataset mnist \
    --data-dir "$DATA_DIR" "${COMPILED[@]}"
exit $FAILED
