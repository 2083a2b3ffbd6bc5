"""The packs' CPU kernels' library: built once, on torch's OpenMP threads, or not at all."""

from __future__ import annotations

import logging
import subprocess

import pytest
import torch
import torch.nn.functional as F
from support import needs_kernels

from downsample_study.nets.kernels import library as kernels
from downsample_study.nets.kernels.max_pool import MaxPool2x2
from downsample_study.nets.kernels.one_input_conv import OneInputConv


@pytest.fixture
def fresh_library():
    """``library()`` decides again (its decision is kept for the process)."""
    kernels.library.cache_clear()
    yield kernels.library
    kernels.library.cache_clear()


@needs_kernels
def test_the_kernels_are_compiled_once_into_the_cache(fresh_library, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert fresh_library() is not None
    built = list((tmp_path / "cache" / "downsample_study" / "kernels").iterdir())
    assert [p.suffix for p in built] == [".so"] and built[0].name.startswith("kernels-")
    stamp = built[0].stat().st_mtime_ns
    fresh_library.cache_clear()
    assert fresh_library() is not None and built[0].stat().st_mtime_ns == stamp


@needs_kernels
def test_the_kernels_run_on_torchs_own_openmp_runtime(fresh_library, tmp_path, monkeypatch):
    """They are linked against the libgomp file torch loaded and find it loaded: when torch
    stops shipping GNU OpenMP this fails, and the kernels must then bring their threads some
    other way."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    before = kernels._openmp_runtimes()
    assert len(before) == 1 and "torch" in next(iter(before))
    assert fresh_library() is not None
    assert kernels._openmp_runtimes() == before
    (built,) = (tmp_path / "downsample_study" / "kernels").glob("*.so")
    needed = subprocess.run(["readelf", "-d", str(built)], capture_output=True, text=True,
                            check=True).stdout
    soname = subprocess.run(["readelf", "-d", next(iter(before))], capture_output=True,
                            text=True, check=True).stdout
    name = soname.split("Library soname: [")[1].split("]")[0]
    assert f"Shared library: [{name}]" in needed


NOT_ONE = ("packs: torch here does not run on one GNU OpenMP runtime, which their CPU kernels "
           "would share; torch's layers run")


@pytest.mark.parametrize(("seen", "said"), [
    (["none"], NOT_ONE),
    (["two"], NOT_ONE),
    (["torch's", "torch's and a second"],
     "packs: their CPU kernels loaded an OpenMP runtime of their own; torch's layers run"),
])
def test_kernels_that_would_start_a_second_pool_of_threads_do_not_run(
        seen, said, fresh_library, monkeypatch, caplog):
    """What the process has loaded, before the kernels' library and after it."""
    if torch.backends.cpu.get_cpu_capability() != "AVX512":
        pytest.skip("without AVX-512 the kernels are not tried")
    torchs = kernels._openmp_runtimes()
    runtimes = {"none": set(), "two": {"/a/libgomp.so.1", "/b/libgomp-0123abcd.so.1"},
                "torch's": torchs, "torch's and a second": torchs | {"/usr/lib/libgomp.so.1"}}
    answers = iter([runtimes[name] for name in seen])
    monkeypatch.setattr(kernels, "_openmp_runtimes", lambda: next(answers))
    caplog.set_level(logging.INFO, logger="downsample_study")
    assert fresh_library() is None
    assert [record.getMessage() for record in caplog.records] == [said]


def test_a_parallel_sweep_builds_the_kernels_before_forking_its_workers(fresh_library,
                                                                       monkeypatch):
    """A forked worker that ran the compiler itself later hung in OpenMP (the GPU check's
    rehearsal, a fresh cache): the workers inherit the built kernels instead."""
    from downsample_study import internals
    from downsample_study.sweeps.launchers import fork_workers

    monkeypatch.setattr(internals, "fork_joblib_workers", lambda: False)  # loky untouched
    fork_workers()
    assert fresh_library.cache_info().currsize == 1


@pytest.mark.parametrize(("compiler", "said"), [
    ("no-such-compiler", "packs: no C compiler (no-such-compiler) to build their CPU "
                         "kernels; torch's layers run"),
    ("false", "packs: their CPU kernels did not build (false failed: exit status 1); "
              "torch's layers run"),
])
def test_without_a_working_compiler_packs_say_so_once_and_run_torchs_layers(
        compiler, said, fresh_library, monkeypatch, caplog):
    if torch.backends.cpu.get_cpu_capability() != "AVX512":
        pytest.skip("without AVX-512 the kernels are not tried")
    monkeypatch.setenv("CC", compiler)
    caplog.set_level(logging.INFO, logger="downsample_study")
    x = torch.randn(2, 3, 4, 4).contiguous(memory_format=torch.channels_last)
    pool, conv = MaxPool2x2(), OneInputConv(3, 6, 3, groups=3)
    for _ in range(2):
        assert torch.equal(pool(x), F.max_pool2d(x, 2))
        assert type(conv(x).grad_fn).__name__ == "ConvolutionBackward0"
    assert [record.getMessage() for record in caplog.records].count(said) == 1
