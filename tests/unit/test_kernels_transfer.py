"""The one-sync host transfer of trace results (``kernels/transfer.py``) on CPU; the CUDA cases
(pinned buffers, batching per dtype, no sync while pushing) are in tests/gpu/test_gpu_kernels.py."""

import numpy as np
import pytest
import torch

from interp.kernels.transfer import HostCopier, to_host


def test_cpu_tensors_come_back_in_push_order():
    tensors = [torch.randn(3, 2), torch.arange(5, dtype=torch.int32), torch.tensor([True, False]), torch.randn(0)]
    host = to_host(tensors)
    assert len(host) == len(tensors)
    for t, h in zip(tensors, host, strict=True):
        assert isinstance(h, np.ndarray) and h.dtype == t.numpy().dtype and np.array_equal(h, t.numpy())


def test_a_finished_copier_refuses_more_tensors():
    copier = HostCopier()
    assert copier.push(torch.ones(2)) == 0
    assert copier.push(torch.zeros(3)) == 1
    out = copier.finish()
    assert [a.tolist() for a in out] == [[1.0, 1.0], [0.0, 0.0, 0.0]]
    with pytest.raises(RuntimeError, match="finished"):
        copier.push(torch.ones(1))
