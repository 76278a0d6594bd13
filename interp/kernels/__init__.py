"""Kernels computing attention statistics (and, later, edits) from the captured q, k, v."""

from interp.kernels.reference import StatRequest, activation_norms, attention_stats

__all__ = ["StatRequest", "activation_norms", "attention_stats"]
