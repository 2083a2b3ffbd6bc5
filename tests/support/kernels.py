"""What the packs' CPU kernels need, as a pytest mark for the tests that check them."""

from __future__ import annotations

import shutil

import pytest
import torch

needs_kernels = pytest.mark.skipif(
    torch.backends.cpu.get_cpu_capability() != "AVX512" or shutil.which("cc") is None,
    reason="the kernels need AVX-512 and a C compiler (cc)")
