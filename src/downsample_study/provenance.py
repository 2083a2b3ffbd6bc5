"""Where a result came from: the code's git commit (and whether the checkout had uncommitted
changes) when run from a checkout, and the versions of the packages that produced it."""

from __future__ import annotations

import functools
import platform
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("downsample_study", "torch", "torchvision", "lightning", "torchmetrics",
            "hydra-core", "omegaconf", "wandb", "numpy")


@functools.cache
def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                             timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout


@functools.cache
def git_state() -> tuple[str | None, bool | None]:
    """(commit, dirty) of the checkout this package runs from; (None, None) when it is
    installed from a wheel or git cannot tell. Dirty: tracked files differ from the commit or
    untracked files that git does not ignore exist."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None, None
    commit = _git(root, "rev-parse", "HEAD")
    status = _git(root, "status", "--porcelain")
    if commit is None:
        return None, None
    return commit.strip(), None if status is None else bool(status.strip())
