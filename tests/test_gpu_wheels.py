"""scripts/gpu_wheels.py: the closure carried to the GPU machine, the plan of what to install
there, and the install itself against a stand-in for an older image (no network: tiny wheels
made here, fake dist-info folders, ``python -S``)."""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata as md
import importlib.util
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_wheels.py"


def load_script():
    spec = importlib.util.spec_from_file_location("gpu_wheels", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_wheels"] = module
    spec.loader.exec_module(module)
    return module


gw = load_script()

# --- the plan ------------------------------------------------------------------------------------

WHEELS = {
    "app": ("1.2", ["lib>=2", "helper", 'legacy; python_version < "3.9"',
                    'fancy; extra == "fancy"', 'win; sys_platform == "win32"']),
    "lib": ("2.1", []),
    "helper": ("0.3", ["lib>=1.5"]),
    "legacy": ("1.0", []),
    "fancy": ("1.0", ["lib>=2"]),
    "win": ("1.0", []),
    "loop-a": ("1.0", ["loop-b"]),
    "loop-b": ("1.0", ["loop-a>=1"]),
    "beta": ("0.0.1b1", []),
    "Typing_Extensions": ("4.16.0", []),
    "needy": ("1.0", ["ghost>=2"]),
}
PY38 = {"python_version": "3.8", "python_full_version": "3.8.10"}
PY312 = {"python_version": "3.12", "python_full_version": "3.12.3"}


@pytest.mark.parametrize("requirements, installed, env, carried, image", [
    pytest.param(["app>=1"], {"lib": "1.0"}, PY312,
                 {"app": "1.2", "helper": "0.3", "lib": "2.1"}, {},
                 id="missing-takes-its-wheel-and-the-wheels-of-its-missing-and-too-old-needs"),
    pytest.param(["lib>=1.5"], {"lib": "1.6"}, PY312, {}, {"lib": "1.6"},
                 id="present-at-a-satisfying-version-is-left-to-the-image-not-pinned"),
    pytest.param(["lib>=2"], {"lib": "1.9"}, PY312, {"lib": "2.1"}, {},
                 id="present-below-the-floor-takes-the-carried-wheel"),
    pytest.param(["lib>=1", "helper"], {"lib": "1.0"}, PY312, {"helper": "0.3", "lib": "2.1"}, {},
                 id="a-later-need-replaces-what-an-earlier-one-left-to-the-image"),
    pytest.param(["typing.extensions>=4.16"], {"TYPING_extensions": "4.5.0"}, PY312,
                 {"typing-extensions": "4.16.0"}, {}, id="names-normalised-per-pep-503"),
    pytest.param(["typing_extensions>=4.16"], {"Typing.Extensions": "4.16.0"}, PY312,
                 {}, {"typing-extensions": "4.16.0"}, id="the-images-names-normalised-too"),
    pytest.param(["app"], {"lib": "3", "helper": "1"}, PY312, {"app": "1.2"},
                 {"helper": "1", "lib": "3"}, id="a-marker-for-an-old-python-is-skipped"),
    pytest.param(["app"], {"lib": "3", "helper": "1"}, PY38, {"app": "1.2", "legacy": "1.0"},
                 {"helper": "1", "lib": "3"}, id="a-marker-for-an-old-python-holds-there"),
    pytest.param(["app[fancy]"], {"lib": "3", "helper": "1"}, PY312,
                 {"app": "1.2", "fancy": "1.0"}, {"helper": "1", "lib": "3"},
                 id="an-extra-asked-for-pulls-its-needs"),
    pytest.param(["app", "helper", "app[fancy]"], {"lib": "3", "helper": "1"}, PY312,
                 {"app": "1.2", "fancy": "1.0"}, {"helper": "1", "lib": "3"},
                 id="an-extra-asked-for-later-pulls-its-needs"),
    pytest.param(['win; sys_platform == "win32"', 'ghost; sys_platform == "win32"'], {}, PY312,
                 {}, {}, id="a-project-need-whose-marker-fails-is-ignored"),
    pytest.param(["loop-a"], {}, PY312, {"loop-a": "1.0", "loop-b": "1.0"}, {},
                 id="a-cycle-ends"),
    pytest.param(["beta==0.0.1b1"], {}, PY312, {"beta": "0.0.1b1"}, {},
                 id="a-prerelease-pin-takes-the-prerelease-wheel"),
    pytest.param(["torch>=2.4"], {"torch": "2.11.0+cu130"}, PY312, {}, {"torch": "2.11.0+cu130"},
                 id="a-local-version-of-the-large-stack-meets-its-floor"),
])
def test_plan_carries_exactly_what_the_image_lacks(requirements, installed, env, carried, image):
    environment = {**gw.DEVICE_ENV, **env}
    decisions = gw.plan(requirements, installed, WHEELS, environment)
    assert {d.name: d.version for d in decisions if d.carried} == carried
    assert {d.name: d.version for d in decisions if not d.carried} == image


@pytest.mark.parametrize("requirements, installed, why", [
    pytest.param(["app"], {"lib": "1.0"}, {
        "app": "missing", "helper": "missing",
        "lib": "have 1.0, need >=2 for app, >=1.5 for helper"}, id="missing-and-too-old"),
    pytest.param(["lib>=1", "helper"], {"lib": "1.0"}, {
        "helper": "missing", "lib": "have 1.0, need >=1.5 for helper"},
        id="only-the-needs-the-image-fails-are-named"),
    pytest.param(["app", "app[fancy]"], {"lib": "1.0", "helper": "1"}, {
        "app": "missing", "fancy": "missing", "lib": "have 1.0, need >=2 for app, >=2 for fancy"},
        id="an-extra-asked-for-later-adds-only-its-own-needs"),
    pytest.param(["typing_extensions>=4.16"], {"TYPING.extensions": "4.5.0"}, {
        "typing-extensions": "have 4.5.0, need >=4.16 for the project"},
        id="the-images-names-normalised-per-pep-503"),
])
def test_plan_says_why_each_wheel_is_carried(requirements, installed, why):
    decisions = gw.plan(requirements, installed, WHEELS, gw.DEVICE_ENV)
    assert {d.name: d.why() for d in decisions if d.carried} == why


@pytest.mark.parametrize("requirements, installed, lines", [
    pytest.param(["needy"], {}, [
        "ghost: missing, need >=2 for needy, and no wheel of it is carried"],
        id="a-need-with-no-carried-wheel"),
    pytest.param(["needy"], {"ghost": "1.0"}, [
        "ghost: have 1.0, need >=2 for needy, and no wheel of it is carried"],
        id="a-too-old-need-with-no-carried-wheel"),
    pytest.param(["torch>=2.4", "numpy>=1.26"], {"torch": "2.3.1"}, [
        "numpy: missing, need >=1.26 for the project: the large stack is the image's to provide"
        " and no wheel of it is carried",
        "torch: have 2.3.1, need >=2.4 for the project: the large stack is the image's to"
        " provide and no wheel of it is carried"],
        id="the-large-stack-below-its-floor-or-missing-one-line-each"),
    pytest.param(["lib>=3"], {"lib": "1.0"}, [
        "lib: have 1.0, need >=3 for the project, and the carried wheel is 2.1"],
        id="the-carried-wheel-itself-below-the-need"),
    pytest.param(["lib>=1", "helper", "lib<2"], {"lib": "1.0"}, [
        "lib: have 1.0, need <2 for the project, and the carried wheel is 2.1"],
        id="needs-no-version-meets-together"),
])
def test_plan_refuses_unmet_needs_one_line_each(requirements, installed, lines):
    with pytest.raises(gw.PlanError) as refused:
        gw.plan(requirements, installed, WHEELS, gw.DEVICE_ENV)
    assert refused.value.lines == lines


# --- the closure and the wheels, here ------------------------------------------------------------


@pytest.fixture(scope="module")
def project_closure():
    return gw.closure(gw.project_requirements())


@pytest.mark.parametrize("name, carried", [
    ("hydra-core", True), ("omegaconf", True), ("antlr4-python3-runtime", True),
    ("wandb", True), ("optuna", True), ("submitit", True), ("pytest-xdist", True),
    ("typing-extensions", True), ("protobuf", True),
    ("torch", False), ("numpy", False), ("lightning", False), ("triton", False),
    ("ruff", False),  # of the dev extra, only the test runners go
])
def test_the_project_closure_carries_all_but_the_large_stack(project_closure, name, carried):
    assert (name in project_closure) is carried
    if carried:
        assert project_closure[name] == md.version(name)  # the version this checkout runs
    assert not [n for n in project_closure if n.startswith(("nvidia-", "cuda-"))]


def fake_distributions(dists: dict):
    def distribution(name):
        if name not in dists:
            raise md.PackageNotFoundError(name)
        version, requires = dists[name]
        return SimpleNamespace(version=version, requires=requires)
    return distribution


@pytest.mark.parametrize("requirements, dists, found", [
    pytest.param(["a"], {"a": ("1", ['b; python_version >= "3.12"', 'c; python_version < "3.12"']),
                         "b": ("1", None), "c": ("1", None)}, ["a", "b"],
                 id="markers-evaluated-for-the-device-not-this-interpreter"),
    pytest.param(['a; python_version < "3.12"', 'b; platform_machine == "x86_64"'],
                 {"a": ("1", None), "b": ("1", None)}, ["b"],
                 id="the-project-markers-too"),
    pytest.param(["a"], {"a": ("1", ["numpy>=1.26", "nvidia-cublas", "torch"]),
                         "torch": ("2.4", ["d"]), "d": ("1", None)}, ["a"],
                 id="the-large-stack-neither-carried-nor-walked"),
    pytest.param(["a"], {"a": ("1", ["b[x]"]), "b": ("1", ['c; extra == "x"', 'e; extra == "y"']),
                         "c": ("1", None), "e": ("1", None)}, ["a", "b", "c"],
                 id="an-extra-walks-its-own-needs-only"),
])
def test_closure_walks_installed_metadata(requirements, dists, found):
    assert list(gw.closure(requirements, gw.DEVICE_ENV, fake_distributions(dists))) == found


@pytest.mark.parametrize("dists, line", [
    pytest.param({"a": ("1", ["ghost"])}, "ghost: needed by a on the device, not installed here"
                 " (install the project's environment first)", id="not-installed-here"),
    pytest.param({"a": ("1", ["b>=2"]), "b": ("1.0", None)}, "b: have 1.0 here, need >=2 for a",
                 id="installed-here-too-old"),
])
def test_closure_fails_here_not_there(dists, line):
    with pytest.raises(gw.Failure) as failed:
        gw.closure(["a"], gw.DEVICE_ENV, fake_distributions(dists))
    assert failed.value.lines == [line]


@pytest.mark.parametrize("built, fits", [
    ("antlr4_python3_runtime-4.9.3-py3-none-any.whl", True),
    ("antlr4_python3_runtime-4.9.3-cp311-cp311-linux_x86_64.whl", False),
])
def test_download_builds_a_source_only_package_here(tmp_path, built, fits):
    """One pip download for all; pip names the package with no wheel, which pip wheel builds:
    kept if pure Python, refused if it built for this machine only."""
    calls = []

    def run(cmd, **_):
        calls.append(cmd[cmd.index("pip") + 3:])
        if "wheel" in cmd:
            (tmp_path / built).touch()
            return SimpleNamespace(returncode=0, stderr="")
        if any(c.startswith("antlr4") for c in cmd):
            return SimpleNamespace(returncode=1, stderr="ERROR: No matching distribution found "
                                   "for antlr4-python3-runtime==4.9.3\n")
        return SimpleNamespace(returncode=0, stderr="")

    pins = {"antlr4-python3-runtime": "4.9.3", "omegaconf": "2.3.1"}
    if not fits:
        with pytest.raises(gw.Failure, match=r"cp311-cp311-linux_x86_64\.whl here, which does not"):
            gw.download(pins, tmp_path, run)
        return
    gw.download(pins, tmp_path, run)
    first, build, second = calls
    assert first[0] == "download" and "--only-binary=:all:" in first and "cp312" in first
    assert first[-2:] == ["antlr4-python3-runtime==4.9.3", "omegaconf==2.3.1"]
    assert build[0] == "wheel" and build[-1] == "antlr4-python3-runtime==4.9.3"
    assert second[0] == "download" and second[-1] == "omegaconf==2.3.1"
    assert "antlr4-python3-runtime==4.9.3" not in second


@pytest.mark.parametrize("make", [
    pytest.param(lambda d: (d.mkdir(), (d / "hydra_core-1.3.7-py3-none-any.whl").touch()),
                 id="a-stale-wheel-in-it"),
    pytest.param(lambda d: d.write_text("x"), id="a-file-not-a-folder"),
])
def test_prepare_refuses_a_folder_that_is_not_empty(tmp_path, make):
    folder = tmp_path / "wheels"
    make(folder)
    before = sorted(folder.iterdir()) if folder.is_dir() else folder.read_text()
    done = subprocess.run([sys.executable, str(SCRIPT), "prepare", str(folder)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith(f"prepare: {folder} is not an empty folder")
    assert (sorted(folder.iterdir()) if folder.is_dir() else folder.read_text()) == before


# --- the install, against a stand-in for an older image ------------------------------------------


def make_wheel(folder: Path, name: str, version: str, requires=()) -> Path:
    """A pure-Python wheel with one module, standin_<name>, that knows its version."""
    dist = f"{name.replace('-', '_')}-{version}"
    files = {
        f"standin_{name.replace('-', '_')}.py": f"VERSION = {version!r}\n",
        f"{dist}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        + "".join(f"Requires-Dist: {r}\n" for r in requires),
        f"{dist}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    files[f"{dist}.dist-info/RECORD"] = "\n".join([*record, f"{dist}.dist-info/RECORD,,"]) + "\n"
    wheel = folder / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, text in files.items():
            zf.writestr(path, text)
    return wheel


def make_image(folder: Path, dists: dict[str, str]) -> Path:
    """An image's site-packages: a METADATA of each of dists, and the real packaging and pip
    (all that this script and pip install need beside the standard library)."""
    folder.mkdir()
    for name, version in dists.items():
        info = folder / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    for package in ("packaging", "pip"):
        [real] = importlib.util.find_spec(package).submodule_search_locations
        (folder / package).symlink_to(real)
    return folder


CARRIED = [  # name, version, Requires-Dist: the wheels prepare would carry
    ("toolkit", "1.0", ["typing-extensions>=4.16", "protobuf>=5", "pytest>=8", "packaging>=20",
                        "helper", 'winonly; sys_platform == "win32"', 'docs; extra == "docs"']),
    ("helper", "0.5", ["typing-extensions>=4.8"]),
    ("typing-extensions", "4.16.0", []),
    ("protobuf", "5.29.3", []),
    ("pytest", "9.0.0", ["packaging"]),
    ("packaging", "26.0", []),
    ("winonly", "1.0", []),
    ("docs", "1.0", []),
]
OLD_IMAGE = {"typing-extensions": "4.5.0", "protobuf": "4.21.0", "pytest": "8.3.0",
             "packaging": "24.0", "torch": "2.11.0"}


@pytest.fixture
def carried(tmp_path) -> Path:
    folder = tmp_path / "wheels"
    folder.mkdir()
    wheels = [make_wheel(folder, *w) for w in CARRIED]
    manifest = {"requirements": ["torch>=2.4", "toolkit>=1", "pytest>=8", "typing-extensions"],
                "wheels": [{"name": n, "version": v, "file": w.name}
                           for (n, v, _), w in zip(CARRIED, wheels)]}
    (folder / "requirements.json").write_text(json.dumps(manifest))
    return folder


def bare_python(*args, path: list[Path]) -> subprocess.CompletedProcess:
    """This interpreter without its site-packages, seeing only ``path``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, path)),
           "PIP_CONFIG_FILE": os.devnull, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([sys.executable, "-S", *args], capture_output=True, text=True, env=env,
                          timeout=120)


def test_install_takes_only_the_missing_and_too_old_wheels(tmp_path, carried):
    image = make_image(tmp_path / "image", OLD_IMAGE)
    target = tmp_path / "target"
    done = bare_python(str(SCRIPT), "install", str(carried), str(target), path=[image])
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "install: 2 missing from the image: helper 0.5, toolkit 1.0",
        "install: 2 too old in the image: protobuf 5.29.3 (have 4.21.0, need >=5 for toolkit), "
        "typing-extensions 4.16.0 (have 4.5.0, need >=4.16 for toolkit, >=4.8 for helper)",
        "install: 3 left to the image: packaging 24.0, pytest 8.3.0, torch 2.11.0",
        f"install: 4 wheels into {target} (put it first on PYTHONPATH)",
    ]
    assert sorted(p.name for p in target.glob("*.dist-info")) == [
        "helper-0.5.dist-info", "protobuf-5.29.3.dist-info", "toolkit-1.0.dist-info",
        "typing_extensions-4.16.0.dist-info"]
    imported = bare_python("-c", "import standin_toolkit, standin_helper, standin_protobuf, "
                           "standin_typing_extensions as t; print(t.__file__, t.VERSION)",
                           path=[target, image])
    assert imported.stdout.split() == [str(target / "standin_typing_extensions.py"), "4.16.0"]
    assert not (target / "standin_pytest.py").exists()  # the image's pytest 8.3 is kept

    again = bare_python(str(SCRIPT), "install", str(carried), str(target), path=[target, image])
    assert again.returncode == 0
    assert again.stdout == (  # now from the target, first on the path: toolkit, typing-extensions
        "install: nothing missing; 4 left to the image: pytest 8.3.0, toolkit 1.0, torch 2.11.0, "
        "typing-extensions 4.16.0\n")


@pytest.mark.parametrize("image, drop, line", [
    pytest.param({**OLD_IMAGE, "torch": "2.3.0"}, None,
                 "install: torch: have 2.3.0, need >=2.4 for the project: the large stack is the "
                 "image's to provide and no wheel of it is carried", id="the-large-stack-too-old"),
    pytest.param(OLD_IMAGE, "helper-0.5-py3-none-any.whl",
                 "install: helper-0.5-py3-none-any.whl is listed in requirements.json but not in",
                 id="a-listed-wheel-gone"),
    pytest.param(OLD_IMAGE, "requirements.json", "install: ", id="no-requirements-json"),
])
def test_install_refuses_in_one_line_and_installs_nothing(tmp_path, carried, image, drop, line):
    if drop:
        (carried / drop).unlink()
    site = make_image(tmp_path / "image", image)
    target = tmp_path / "target"
    done = bare_python(str(SCRIPT), "install", str(carried), str(target), path=[site])
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith(line)
    assert not target.exists()
