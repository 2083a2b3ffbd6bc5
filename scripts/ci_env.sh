#!/usr/bin/env bash
# CI's fresh-venv jobs (issue 33): the fast tests in a throw-away venv installed from
# pyproject.toml, outside .venv.
#   lowest      are the floors true? The LOWEST versions [project] dependencies and the dev
#               extra allow (uv --resolution lowest-direct; what they pull in resolves as
#               usual) on requires-python's floor. A failure there is a floor to raise.
#   python X.Y  the project on another Python as a user installs it: pip install -e '.[dev]'.
# Measured (1390 tests pass): lowest on 3.10: install 45 s (torch 2.4, a CUDA build: 2.9 GB
# down, 5.5 GB venv); python 3.13: install 2 min (1 GB down, 6.1 GB venv). Tests: 4.5 and 4 min
# with -n auto on 2 idle cores (CI), 15 and 17 min with -n 1 on 2 busy ones.
# Usage: bash scripts/ci_env.sh lowest | python X.Y. Environment, all optional:
#   CI_PYTHON       the interpreter (default: pythonX.Y from PATH, else pyenv's)
#   CI_PYTEST_ARGS  replaces "-n auto" (e.g. "-n 1" on a busy machine)
#   CI_UV_CACHE     lowest: uv's cache folder, kept for a rerun (default: deleted with the venv)
set -euo pipefail
cd "$(dirname "$0")/.."

usage="usage: bash scripts/ci_env.sh lowest | python X.Y"
mode=${1:-}
case $mode in
    lowest) want=$(sed -n 's/^requires-python *= *">= *\([0-9]*\.[0-9]*\).*/\1/p' pyproject.toml)
            want=${want:?no requires-python floor in pyproject.toml} ;;
    python) want=${2:?$usage} ;;
    *) echo "$usage" >&2; exit 2 ;;
esac
job="ci_env $mode"

find_python() {  # $1: X.Y -> an interpreter of that version, else nothing
    local p
    for p in "$(command -v "python$1" || true)" "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$1".*/bin/python \
        /root/.pyenv/versions/"$1".*/bin/python; do
        if [ -x "$p" ] && "$p" -c "import sys; sys.exit('%d.%d' % sys.version_info[:2] != '$1')" \
            2>/dev/null; then
            echo "$p"; return 0
        fi
    done
}
if [ -n "${CI_PYTHON:-}" ]; then
    python=$CI_PYTHON
    want=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
else
    python=$(find_python "$want")
fi
if [ -z "$python" ]; then echo "$job: FAIL: no Python $want found (set CI_PYTHON)" >&2; exit 2; fi

work=$(mktemp -d "${TMPDIR:-/tmp}/ci_env.XXXXXX")
trap 'rm -rf "$work"' EXIT
venv=$work/venv py=$work/venv/bin/python
t0=$(date +%s)
"$python" -m venv "$venv"
case $mode in
    lowest)
        export UV_CACHE_DIR=${CI_UV_CACHE:-$work/uv-cache} UV_PYTHON_DOWNLOADS=never UV_NO_PROGRESS=1
        "$py" -m pip install -q --disable-pip-version-check uv </dev/null
        echo "== lowest-direct install of .[dev] on $("$py" -V), $("$venv/bin/uv" --version)"
        "$venv/bin/uv" pip install --python "$py" --resolution lowest-direct -e '.[dev]' </dev/null ;;
    python)
        # no pip cache: nothing left behind (pip's HTTP cache kept nothing from PyPI when tried)
        export PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_PROGRESS_BAR=off
        echo "== pip install -e '.[dev]' on $("$py" -V)"
        "$py" -m pip install -q --upgrade pip </dev/null
        "$py" -m pip install -q -e '.[dev]' </dev/null ;;
esac
t1=$(date +%s)
"$py" -c 'from importlib.metadata import version
print("installed:", *(f"{n} {version(n)}" for n in ("torch", "torchvision", "lightning",
      "wandb", "tensorboard", "hydra-core", "matplotlib", "pillow", "numpy", "pandas")))'

echo "== the fast tests"
set +e
# shellcheck disable=SC2086
"$py" -m pytest -m "not slow" ${CI_PYTEST_ARGS:--n auto} --dist loadgroup -p no:cacheprovider \
    </dev/null 2>&1 | tee "$work/pytest.log"
rc=${PIPESTATUS[0]}
set -e
t2=$(date +%s)
result=$(grep -E '^=+ .*(passed|failed|error|no tests ran).* in [0-9.]+s' "$work/pytest.log" \
    | tail -n1 | sed -E 's/^=+ //; s/ =+$//' || true)
[ "$rc" -eq 0 ] && verdict=PASS || verdict="FAIL (pytest exit $rc)"
echo "$job: $verdict on Python $want; install $((t1 - t0))s ($(du -sh "$venv" | cut -f1))," \
    "tests $((t2 - t1))s: ${result:-no result line}"
exit "$rc"
