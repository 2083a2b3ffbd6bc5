"""Carry the project's missing Python packages to the lent GPU machine as wheels, and install them.

That machine has no network and an image whose own packages (torch and the rest) must stay: only
what it lacks or holds too old is installed, from wheels made here, into a folder of its own.
"""

from __future__ import annotations

import argparse
import fnmatch
import importlib.metadata as md
import json
import os
import re
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from email.parser import Parser
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = "requirements.json"
DEV_TOOLS = ("pytest", "pytest-xdist")  # of the dev extra, the ones the GPU check runs

# The large stack the device image carries and the project only needs a floor of: never carried
# and never walked; `install` checks the floors the project and the carried wheels ask of them.
LARGE_STACK = (
    "torch", "torchvision", "triton", "nvidia-*", "cuda-*", "numpy", "scipy", "pandas",
    "matplotlib", "statsmodels", "lightning", "pytorch-lightning", "torchmetrics", "tensorboard",
    "pillow", "pyarrow", "sympy", "networkx", "jinja2", "fonttools", "kiwisolver", "contourpy",
)

# The device: CPython 3.12 on x86-64 Linux (markers of the closure are evaluated for it)
DEVICE_ENV = {
    **default_environment(),
    "implementation_name": "cpython", "implementation_version": "3.12.3", "os_name": "posix",
    "platform_machine": "x86_64", "platform_python_implementation": "CPython",
    "platform_system": "Linux", "python_full_version": "3.12.3", "python_version": "3.12",
    "sys_platform": "linux",
}
DEVICE_WHEELS = [
    "--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp", "--abi", "cp312",
    "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64",
    "--platform", "manylinux2014_x86_64", "--platform", "any",
]
PIP = ["-m", "pip", "--disable-pip-version-check", "--no-input"]


class Failure(Exception):
    """What went wrong, one line per problem (printed without a traceback)."""

    def __init__(self, lines: Iterable[str]):
        self.lines = list(lines)
        super().__init__("\n".join(self.lines))


class PlanError(Failure):
    """Needs that neither the image nor the carried wheels meet."""


def is_large_stack(name: str) -> bool:
    return any(fnmatch.fnmatchcase(canonicalize_name(name), p) for p in LARGE_STACK)


def satisfies(version: str | None, specifier: SpecifierSet) -> bool:
    if version is None:
        return False
    try:
        return specifier.contains(Version(version), prereleases=True)
    except InvalidVersion:
        return False


def needed(requires: Iterable[str], extras: Iterable[str],
           environment: Mapping) -> list[Requirement]:
    """The requirements among ``requires`` (Requires-Dist strings) whose markers hold for
    ``environment`` with the given extras (none: the plain package)."""
    out = []
    for line in requires:
        req = Requirement(line)
        if req.marker is None or any(
            req.marker.evaluate({**environment, "extra": e}) for e in {"", *extras}
        ):
            out.append(req)
    return out


def more_needed(requires: list[str], before: set[str] | None, extras: set[str],
                environment: Mapping) -> list[Requirement]:
    """The requirements that asking for ``extras`` adds to asking for ``before`` (None: the
    package was not asked for yet)."""
    had = set() if before is None else {str(r) for r in needed(requires, before, environment)}
    return [r for r in needed(requires, extras, environment) if str(r) not in had]


@dataclass(frozen=True)
class Decision:
    """One package the project needs: the carried wheel's version, or the image's."""

    name: str
    version: str
    carried: bool
    have: str | None  # the image's version (None: missing there)
    needs: tuple[tuple[str, str], ...]  # (specifier, who asked), for each time it was asked

    def why(self) -> str:
        if self.have is None:
            return "missing"
        failing = [(s, by) for s, by in self.needs if not satisfies(self.have, SpecifierSet(s))]
        return f"have {self.have}, need " + ", ".join(f"{s} for {by}" for s, by in failing)


def plan(
    requirements: Iterable[str],
    installed: Mapping[str, str],
    wheels: Mapping[str, tuple[str, Iterable[str]]],
    environment: Mapping | None = None,
) -> list[Decision]:
    """Which carried wheels to install: a requirement the image meets is left to it; one it
    lacks or holds too old takes the carried wheel, whose own requirements are checked the same
    way. ``installed``: name -> version in the image; ``wheels``: name -> (version,
    Requires-Dist lines). Raises PlanError, one line per package, for needs nothing meets."""
    env = dict(environment or default_environment())
    installed = {canonicalize_name(k): v for k, v in installed.items()}
    wheels = {canonicalize_name(k): (v, list(r)) for k, (v, r) in wheels.items()}
    asked: dict[str, list[tuple[SpecifierSet, str]]] = {}
    carried: dict[str, set[str]] = {}  # name -> the extras its requirements were walked for
    queue = [(req, "the project") for req in needed(requirements, (), env)]
    while queue:
        req, by = queue.pop(0)
        name = canonicalize_name(req.name)
        asked.setdefault(name, []).append((req.specifier, by))
        before = carried.get(name)
        if before is None and (satisfies(installed.get(name), req.specifier)
                               or name not in wheels):
            continue  # the image's (or nothing meets it: reported below)
        extras = (before or set()) | set(req.extras)
        if extras == before:
            continue
        carried[name] = extras
        queue += [(r, name) for r in more_needed(wheels[name][1], before, extras, env)]
    errors, decisions = [], []
    for name, needs in sorted(asked.items()):
        have = installed.get(name)
        version = wheels[name][0] if name in carried else have
        failing = [(s, by) for s, by in needs if not satisfies(version, s)]
        if failing:
            errors.append(unmet(name, have, version if name in carried else None, failing))
        else:
            decisions.append(Decision(name, version, name in carried, have,
                                      tuple((str(s), by) for s, by in needs)))
    if errors:
        raise PlanError(errors)
    return decisions


def unmet(name: str, have: str | None, wheel: str | None, failing: list) -> str:
    need = "; ".join(f"{s or 'any version'} for {by}" for s, by in failing)
    state = "missing" if have is None else f"have {have}"
    if wheel is not None:
        return f"{name}: {state}, need {need}, and the carried wheel is {wheel}"
    if is_large_stack(name):
        return (f"{name}: {state}, need {need}: the large stack is the image's to provide "
                "and no wheel of it is carried")
    return f"{name}: {state}, need {need}, and no wheel of it is carried"


# --- here: the closure and the wheels ------------------------------------------------------------


def project_requirements(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """[project] dependencies plus the dev extra's test runners."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: the dev extra's tomli, the same API
        import tomli as tomllib

    project = tomllib.loads(pyproject.read_text())["project"]
    dev = project.get("optional-dependencies", {}).get("dev", [])
    return [*project["dependencies"],
            *(r for r in dev if canonicalize_name(Requirement(r).name) in DEV_TOOLS)]


def closure(
    requirements: Iterable[str],
    environment: Mapping = DEVICE_ENV,
    distribution: Callable = md.distribution,
) -> dict[str, str]:
    """name -> version installed here of every package the requirements need on the device
    (markers evaluated for it), walking installed metadata, the large stack left out."""
    found: dict[str, str] = {}
    walked: dict[str, set[str]] = {}
    errors: dict[str, str] = {}
    queue = [(req, "the project") for req in needed(requirements, (), environment)]
    while queue:
        req, by = queue.pop(0)
        name = canonicalize_name(req.name)
        if is_large_stack(name):
            continue
        try:
            dist = distribution(name)
        except md.PackageNotFoundError:
            errors[name] = (f"{name}: needed by {by} on the device, not installed here "
                            "(install the project's environment first)")
            continue
        if not satisfies(dist.version, req.specifier):
            errors[name] = f"{name}: have {dist.version} here, need {req.specifier} for {by}"
        before = walked.get(name)
        extras = (before or set()) | set(req.extras)
        if extras == before:
            continue
        walked[name] = extras
        found[name] = dist.version
        queue += [(r, name) for r in more_needed(dist.requires or [], before, extras, environment)]
    if errors:
        raise Failure(errors.values())
    return dict(sorted(found.items()))


def fits_device(wheel: str) -> bool:
    """A wheel built here (from a source archive) that is pure Python."""
    return any(t.platform == "any" and t.abi == "none" and t.interpreter.startswith("py3")
               for t in parse_wheel_filename(wheel)[3])


def download(pins: Mapping[str, str], folder: Path, run: Callable = subprocess.run) -> None:
    """Every pinned package's wheel for the device into folder: one pip download for all; a
    package published only as a source archive (pip names it) is built here with pip wheel."""
    pending = dict(pins)
    while pending:
        specs = [f"{n}=={v}" for n, v in sorted(pending.items())]
        cmd = [sys.executable, *PIP, "download", "-q", "--no-deps", *DEVICE_WHEELS, "-d",
               str(folder), *specs]
        done = run(cmd, capture_output=True, text=True)
        if done.returncode == 0:
            return
        found = re.search(r"No matching distribution found for (\S+)", done.stderr)
        name = found and canonicalize_name(Requirement(found.group(1)).name)
        if name not in pending:
            raise Failure([f"pip download failed: {' '.join(done.stderr.split()[-30:])}"])
        spec = f"{name}=={pending.pop(name)}"
        before = set(folder.glob("*.whl"))
        built = run([sys.executable, *PIP, "wheel", "-q", "--no-deps", "-w", str(folder), spec],
                    capture_output=True, text=True)
        new = sorted(p.name for p in set(folder.glob("*.whl")) - before)
        if built.returncode != 0 or len(new) != 1:
            raise Failure([f"{spec}: no wheel for the device and pip wheel failed: "
                           + " ".join(built.stderr.split()[-30:])])
        if not fits_device(new[0]):
            raise Failure([f"{spec}: no wheel for the device, and its source archive builds "
                           f"{new[0]} here, which does not run there"])


def wheel_metadata(path: Path) -> tuple[str, str, list[str]]:
    """(Name, Version, Requires-Dist lines) from a wheel's METADATA."""
    with zipfile.ZipFile(path) as zf:
        [meta] = [n for n in zf.namelist()
                  if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
        headers = Parser().parsestr(zf.read(meta).decode("utf-8"), headersonly=True)
    return headers["Name"], headers["Version"], headers.get_all("Requires-Dist") or []


def carried_wheels(folder: Path) -> dict[str, tuple[Path, str, list[str]]]:
    """name -> (file, version, Requires-Dist) of the wheels in folder."""
    out = {}
    for path in sorted(folder.glob("*.whl")):
        name, version, requires = wheel_metadata(path)
        name = canonicalize_name(name)
        if name in out:
            raise Failure([f"{name}: two wheels, {out[name][0].name} and {path.name}"])
        out[name] = (path, version, requires)
    return out


def prepare(folder: Path, pyproject: Path = ROOT / "pyproject.toml") -> int:
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise Failure([f"{folder} is not an empty folder: prepare starts from an empty one, so "
                       "that no stale wheel travels"])
    start = time.monotonic()
    requirements = project_requirements(pyproject)
    pins = closure(requirements)
    folder.mkdir(parents=True, exist_ok=True)
    download(pins, folder)
    wheels = carried_wheels(folder)
    got = {n: v for n, (_, v, _) in wheels.items()}
    if {n: Version(v) for n, v in got.items()} != {n: Version(v) for n, v in pins.items()}:
        extra = sorted(f"{n}=={v}" for n, v in got.items() if pins.get(n) != v)
        lacking = sorted(f"{n}=={v}" for n, v in pins.items() if got.get(n) != v)
        raise Failure([f"the wheels in {folder} are not the closure: extra {extra}, "
                       f"lacking {lacking}"])
    # on an image holding only the large stack (at this environment's versions), the carried
    # wheels must meet every need, read from the wheels themselves
    stack = {}
    for dist in md.distributions():
        name = canonicalize_name(dist.metadata["Name"] or "")
        if name and is_large_stack(name):
            stack.setdefault(name, dist.version)
    plan(requirements, stack, {n: (v, r) for n, (_, v, r) in wheels.items()}, DEVICE_ENV)
    manifest = {
        "python": DEVICE_ENV["python_version"],
        "requirements": requirements,
        "wheels": [{"name": n, "version": v, "file": p.name}
                   for n, (p, v, _) in sorted(wheels.items())],
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    size = sum(p.stat().st_size for p, _, _ in wheels.values())
    print(f"prepare: {len(wheels)} wheels for the device in {folder}, {size / 2**20:.1f} MiB, "
          f"{time.monotonic() - start:.0f} s: "
          + " ".join(f"{n}=={v}" for n, v in sorted(got.items())))
    return 0


# --- there: the install --------------------------------------------------------------------------


def installed_versions() -> dict[str, str]:
    """name -> version of what this interpreter imports (the first on sys.path wins)."""
    out: dict[str, str] = {}
    for dist in md.distributions():
        name = dist.metadata["Name"]
        if name:
            out.setdefault(canonicalize_name(name), dist.version)
    return out


def install(folder: Path, target: Path, run: Callable = subprocess.run) -> int:
    if not (folder / MANIFEST).is_file():
        raise Failure([f"{folder / MANIFEST} is missing: run prepare first"])
    manifest = json.loads((folder / MANIFEST).read_text())
    wheels = {}
    for entry in manifest["wheels"]:
        if not (folder / entry["file"]).is_file():
            raise Failure([f"{entry['file']} is listed in {MANIFEST} but not in {folder}"])
        name, version, requires = wheel_metadata(folder / entry["file"])
        wheels[canonicalize_name(name)] = (version, requires, folder / entry["file"])
    decisions = plan(manifest["requirements"], installed_versions(),
                     {n: (v, r) for n, (v, r, _) in wheels.items()})
    chosen = [d for d in decisions if d.carried]
    image = [d for d in decisions if not d.carried]
    left = f"{len(image)} left to the image: " + ", ".join(f"{d.name} {d.version}" for d in image)
    if not chosen:
        print(f"install: nothing missing; {left}")
        return 0
    missing = [d for d in chosen if d.have is None]
    old = [d for d in chosen if d.have is not None]
    if missing:
        print(f"install: {len(missing)} missing from the image: "
              + ", ".join(f"{d.name} {d.version}" for d in missing))
    if old:
        print(f"install: {len(old)} too old in the image: "
              + ", ".join(f"{d.name} {d.version} ({d.why()})" for d in old))
    print(f"install: {left}")
    cmd = [sys.executable, *PIP, "install", "-q", "--no-index", "--no-deps", "--no-compile",
           "--upgrade", "--target", str(target), *(str(wheels[d.name][2]) for d in chosen)]
    done = run(cmd, env={**os.environ, "PIP_ROOT_USER_ACTION": "ignore"})
    if done.returncode != 0:
        raise Failure([f"pip install --target {target} failed, exit {done.returncode}"])
    print(f"install: {len(chosen)} wheels into {target} (put it first on PYTHONPATH)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="here: the closure's wheels for the device into DIR")
    p.add_argument("dir", type=Path)
    p.add_argument("--pyproject", type=Path, default=ROOT / "pyproject.toml")
    i = sub.add_parser("install", help="there: the wheels of DIR the image needs, into TARGET")
    i.add_argument("dir", type=Path)
    i.add_argument("target", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "prepare":
            return prepare(args.dir, args.pyproject)
        return install(args.dir, args.target)
    except Failure as failure:
        for line in failure.lines:
            print(f"{args.command}: {line}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
