"""``results.json``: the machine-readable outcome of one job, written atomically."""

from __future__ import annotations

import json
import os
import platform
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

RESULTS_FILE = "results.json"
_PACKAGES = ("downsample_study", "torch", "torchvision", "lightning", "torchmetrics",
             "hydra-core", "wandb", "numpy")


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def write_results(output_dir: Path, results: dict[str, Any]) -> Path:
    """Write ``results.json`` so that a reader never sees a half-written file."""
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / RESULTS_FILE
    with tempfile.NamedTemporaryFile("w", dir=output_dir, suffix=".tmp", delete=False) as f:
        json.dump(results, f, indent=2, sort_keys=False)
        f.write("\n")
    os.replace(f.name, path)
    return path


def read_results(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())
