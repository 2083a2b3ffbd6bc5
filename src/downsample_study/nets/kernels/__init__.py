"""Packs' CPU kernels in C, where torch's layers spend a pack's step on overhead.

Compiled on first use into one shared library (``library``); it runs on torch's own OpenMP
threads. Without a C compiler, AVX-512 or torch's OpenMP, torch's layers run."""
