"""A parallel sweep's slots: exclusive while held, idle cores lent and given back, one job per
GPU, the trainer pinned to its slot's device."""

from __future__ import annotations

import contextlib

import pytest
import torch

from downsample_study.errors import ConfigError
from downsample_study.runtime.slots import (
    ShareIdleCores,
    Slot,
    available_cores,
    claim_slot,
)


def test_slots_are_exclusive_while_held_and_free_again_after(tmp_path):
    with claim_slot(tmp_path, 2, 0) as first, claim_slot(tmp_path, 2, 0) as second:
        assert {first.index, second.index} == {0, 1}
        assert first.gpu is None and first.threads == max(1, available_cores() // 2)
    with claim_slot(tmp_path, 2, 0) as again:
        assert again.index == 0


def test_a_job_takes_the_cores_of_idle_slots_after_two_checks_and_gives_them_back(
    tmp_path, monkeypatch
):
    monkeypatch.setattr("downsample_study.runtime.slots.available_cores", lambda: 4)
    threads = torch.get_num_threads()
    try:
        with claim_slot(tmp_path, 2, 0) as mine:
            share = ShareIdleCores(mine)
            with claim_slot(tmp_path, 2, 0):
                assert mine.fair_threads() == 2
                torch.set_num_threads(2)
                share.rebalance()
                assert torch.get_num_threads() == 2
            # the other job is done: its slot might be claimed again at once, so wait a check
            assert mine.fair_threads() == 4
            share.rebalance()
            assert torch.get_num_threads() == 2
            share.rebalance()
            assert torch.get_num_threads() == 4
            with claim_slot(tmp_path, 2, 0):  # a new job: give its share back at once
                share.rebalance()
                assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)


def test_no_gpu_gets_a_second_job_while_another_is_idle(tmp_path):
    # 2 GPUs, 2 jobs per GPU: slots 0 and 2 use GPU 0, slots 1 and 3 GPU 1
    held: dict[str, contextlib.ExitStack] = {}

    def claim(name: str) -> Slot:
        held[name] = contextlib.ExitStack()
        return held[name].enter_context(claim_slot(tmp_path, 4, 2))

    assert [claim(name).gpu for name in "abc"] == [0, 1, 0]
    held.pop("a").close()
    held.pop("b").close()  # GPU 0 still runs c, GPU 1 is idle; free slots: 0, 1, 3
    assert claim("d").gpu == 1
    assert claim("e").gpu == 0
    for stack in held.values():
        stack.close()


def test_a_slot_pins_the_trainer_to_its_gpu_and_refuses_multi_device_jobs():
    trainer = {"accelerator": "auto", "devices": 1}
    settings = Slot(index=3, gpu=1, threads=1).trainer_settings(trainer)
    assert settings == {"accelerator": "gpu", "devices": [1]}
    assert Slot(index=0, gpu=None, threads=1).trainer_settings(trainer) == {}  # CPU: as set
    with pytest.raises(ConfigError, match=r"trainer\.devices"):
        Slot(index=0, gpu=0, threads=1).trainer_settings({"accelerator": "gpu", "devices": 2})
