"""The kernels' shared library (compiled once per source and flags, loaded once per process)
and what every kernel asks of its layer and its input."""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from downsample_study.console import say
from downsample_study.nets.shapes import pair, stride_of

SOURCES = sorted(Path(__file__).parent.glob("*.c"))
HEADERS = sorted(Path(__file__).parent.glob("*.h"))
# explicit instruction sets, not -march=native: a cache in a home folder shared by the nodes
# of a cluster must not hold code some node cannot run
FLAGS = ("-O3", "-fopenmp", "-mavx512f", "-mavx512bw", "-mavx512vl", "-fPIC")
POINTER, SIZE, FLAG = ctypes.c_void_p, ctypes.c_long, ctypes.c_int
SIGNATURES = {
    "max_pool_forward": [POINTER] * 3 + [SIZE] * 4 + [FLAG, FLAG],
    "max_pool_backward": [POINTER] * 3 + [SIZE] * 4 + [FLAG],
    "one_input_conv_forward": [POINTER] * 4 + [SIZE] * 9 + [FLAG],
    "one_input_conv_backward": [POINTER] * 3 + [SIZE] * 9 + [FLAG],
    "grouped_conv_input_grad": [POINTER] * 3 + [SIZE] * 10 + [FLAG],
}


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        error = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[0]
        raise OSError(f"{command[0]} failed: {error}")


def _build(compiler: list[str], openmp: str) -> Path:
    """The shared library of these sources and flags, compiled once into the cache and linked
    against ``openmp``, the OpenMP runtime torch loaded: whatever its file is called (older
    torch wheels renamed theirs), the loader then finds it loaded and adds no second one."""
    key = hashlib.sha256(shlex.join([*compiler, *FLAGS, openmp]).encode())
    for source in [*SOURCES, *HEADERS]:
        key.update(source.name.encode() + source.read_bytes())
    folder = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "downsample_study"
    built = folder / "kernels" / f"kernels-{key.hexdigest()[:16]}.so"
    if not built.is_file():
        built.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=built.parent) as work:  # another process may build
            objects = [str(Path(work) / f"{source.stem}.o") for source in SOURCES]
            for source, target in zip(SOURCES, objects, strict=True):
                _run([*compiler, *FLAGS, "-c", "-o", target, str(source)])
            partial = Path(work) / built.name
            _run([*compiler, "-shared", "-o", str(partial), *objects, openmp])
            os.replace(partial, built)
    return built


def _openmp_runtimes() -> set[str]:
    """The OpenMP runtimes (GNU's libgomp) this process has loaded, by file."""
    with open("/proc/self/maps") as maps:
        return {line.split()[-1] for line in maps if "/libgomp" in line}


@functools.cache
def library() -> ctypes.CDLL | None:
    """The compiled kernels, or None where they cannot run here (said once, with the reason)."""
    if sys.platform != "linux" or torch.backends.cpu.get_cpu_capability() != "AVX512":
        return None
    compiler = shlex.split(os.environ.get("CC") or "cc")
    if not compiler or shutil.which(compiler[0]) is None:
        say(f"packs: no C compiler ({os.environ.get('CC') or 'cc'}) to build their CPU "
            "kernels; torch's layers run")
        return None
    torchs = _openmp_runtimes()
    if len(torchs) != 1:  # none: loading ours would start a pool of threads beside torch's
        say("packs: torch here does not run on one GNU OpenMP runtime, which their CPU kernels "
            "would share; torch's layers run")
        return None
    try:
        built = _build(compiler, next(iter(torchs)))
    except OSError as err:
        say(f"packs: their CPU kernels did not build ({err}); torch's layers run")
        return None
    lib = ctypes.CDLL(str(built))
    if _openmp_runtimes() != torchs:
        say("packs: their CPU kernels loaded an OpenMP runtime of their own; torch's layers run")
        return None
    for name, arguments in SIGNATURES.items():
        getattr(lib, name).argtypes = arguments
    return lib


def takes(x: torch.Tensor) -> bool:
    """Whether a kernel can take ``x``: a non-empty float32 channels-last CPU map, outside
    ``torch.compile``, with the library loaded."""
    return (x.dim() == 4 and x.device.type == "cpu" and x.dtype == torch.float32
            and x.numel() > 0 and x.is_contiguous(memory_format=torch.channels_last)
            and not torch.compiler.is_compiling() and library() is not None)


def plain_conv(conv: torch.nn.Conv2d) -> bool:
    """Whether ``conv`` has the shape every conv kernel takes: stride 1, no dilation, zero
    padding given in numbers."""
    return (stride_of(conv) == (1, 1) and pair(conv.dilation) == (1, 1)
            and not isinstance(conv.padding, str) and conv.padding_mode == "zeros")
