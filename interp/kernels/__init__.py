"""Kernels computing attention statistics (and, later, edits) from the captured q, k, v."""

from interp.kernels.lse_path import compute_stats, lse_stats
from interp.kernels.reference import StatRequest, activation_norms, attention_stats

__all__ = ["StatRequest", "activation_norms", "attention_stats", "compute_stats", "lse_stats"]
