"""The docs: the generated reference pages follow the code, and the README stays a front page."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from downsample_study.config.reference import (
    config_reference,
    field_comments,
    results_reference,
)
from downsample_study.config.store import CONFIG_DIR
from downsample_study.nets.downsample_base import PoolConfig
from downsample_study.nets.downsample_configs import DOWNSAMPLES
from downsample_study.results import Results

ROOT = Path(__file__).resolve().parents[1]


@dataclasses.dataclass
class _Documented:
    # the line above
    # and the one above that
    first: int = 1  # and beside it
    second: str = "x"
    third: bool = True  # beside only


def test_a_keys_comment_is_the_lines_above_it_then_the_one_beside_it():
    assert field_comments(_Documented) == {
        "first": "the line above and the one above that and beside it", "second": "",
        "third": "beside only"}


@pytest.mark.parametrize(("default", "shown"), [(5, "`5`"), (7, "`7`")])
def test_the_configuration_page_shows_a_schemas_default_as_it_is_now(default, shown,
                                                                      monkeypatch):
    changed = dataclasses.make_dataclass(
        "PoolConfig", [("kernel_size", int, dataclasses.field(default=default))],
        bases=(PoolConfig,))
    monkeypatch.setitem(DOWNSAMPLES.schemas, "maxpool", changed)
    page = config_reference()
    section = page.split("### `downsample=maxpool`")[1].split("###")[0]
    assert f"| `downsample.kernel_size` | int | {shown} |" in section


def test_the_configuration_page_has_every_option_and_its_files_summary():
    page = config_reference()
    for path in CONFIG_DIR.glob("*/*.yaml"):
        assert f"`{path.parent.name}={path.stem}`" in page, path
    assert "| `speed.compile` | choice | `none` | `none`, `default`, `reduce-overhead`, " \
           "`max-autotune` |" in page
    assert "Anti-aliased downsampling (Zhang, ICML 2019)" in page  # blurpool.yaml's comment


def test_the_results_page_has_every_field_and_status():
    page = results_reference()
    for field in dataclasses.fields(Results):
        assert re.search(rf"\| `{field.name}[.`]", page), field.name
    assert "| `interrupted` | stopped by a signal; the same command resumes it |" in page


@pytest.mark.parametrize("args", [[], ["settings"], ["config", "results"]])
def test_a_reference_page_that_does_not_exist_is_one_line_and_exit_2(args):
    run = subprocess.run([sys.executable, "-m", "downsample_study.config.reference", *args],
                         capture_output=True, text=True)
    assert run.returncode == 2 and not run.stdout
    assert run.stderr == "usage: python -m downsample_study.config.reference config|results\n"


def test_the_readme_is_a_front_page_whose_links_all_resolve():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme)
    assert links and all((ROOT / link).exists() for link in links), links


def test_the_constraints_pin_the_versions_every_recorded_result_ran_with():
    pins = dict(line.split("==") for line in
                (ROOT / "docs/results/constraints.txt").read_text().splitlines()
                if line and not line.startswith("#"))
    records = list((ROOT / "docs/results").glob("*/record/*/results.json"))
    assert records
    for path in records:
        versions = json.loads(path.read_text())["provenance"]["versions"]
        assert versions.pop("python") == "3.11.7" and versions.pop("downsample_study")
        assert versions == pins, path


def _operator_rows() -> dict[str, list[str]]:
    page = (ROOT / "docs" / "operators-and-models.md").read_text()
    table = page.split("| option | family |")[1].split("\n\n")[0]
    return {cells[0].strip("`"): cells for cells in (
        [c.strip() for c in line.strip("| ").split(" | ")] for line in table.splitlines()[2:])}


@pytest.mark.parametrize("name", sorted(DOWNSAMPLES.names()))
def test_the_operators_table_has_each_operators_family_and_lenet5_count(name):
    from downsample_study.nets.models import build_model, model_config
    from downsample_study.nets.operators import downsample_config
    from downsample_study.nets.shapes import count_params

    cells = _operator_rows()[name]
    cfg = downsample_config(name)
    assert cells[1] == type(cfg).family.value
    net = build_model(model_config("lenet5"), cfg, (1, 28, 28), 10)
    assert cells[-1] == f"{count_params(net):,}"
