"""The precision matrix (issue 16): every built-in family x {fp32, bf16, fp16} x {observe all statistics,
one edit, attention maps}. Observation is bit-identical to the plain pipeline at every dtype, labels
follow the loop, the edit applies exactly at its step; the check itself is ``tests/integration/_precision``
(``benchmarks/precision_matrix.py`` prints the same cells as a table)."""

from __future__ import annotations

import functools

import pytest

import interp
from tests.integration._precision import DTYPES, MODES, check, plain


@functools.cache
def built(name: str, dt: str):
    pipe = interp.pipelines.tiny(name, dtype=DTYPES[dt])
    return pipe, plain(pipe, name)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dt", list(DTYPES))
@pytest.mark.parametrize("name", interp.pipelines.SUPPORTED_TINY)
def test_precision_matrix_cell(name, dt, mode):
    pipe, reference = built(name, dt)
    result = check(pipe, name, mode, reference)
    assert all(result.values()), f"{name} {dt} {mode}: {result}"
