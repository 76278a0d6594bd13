"""FID_shift and KID from per-image Inception features, with torchmetrics' formulas.

Two sets of the same store (baseline vs a condition) are compared through the 2048-d pool3 features of
torch-fidelity's FID Inception (``inception-v3-compat``), extracted once per image
(``InceptionFeatures.features``) so a store can keep them: FID and KID are then recomputed from the
stored features for bootstrap confidence intervals or per-tag subsets without re-running the network.

- Features: torchmetrics' ``NoTrainInceptionV3`` (the extractor of its ``FrechetInceptionDistance``)
  on uint8 RGB images, with ``antialias`` set explicitly from ``settings.fid_antialias`` (True:
  bilinear with antialias to 299 px, torchmetrics' default; False: the TF1-compatible resize of the
  original FID code; the choice alone moves FID by about 15%).
- FID: ``torchmetrics.image.fid.FrechetInceptionDistance`` fed the stored features through an identity
  feature module (its float64 accumulation and eigenvalue formula, not a re-implementation).
- KID: ``torchmetrics.image.kid.KernelInceptionDistance`` the same way. Its default subset size (1,000)
  refuses smaller sets, so the subset size is ``min(settings.kid_subset_size or 1000, n_a, n_b)``; the
  random subsets are drawn under a fixed seed (torch's RNG forked, the caller's state untouched).

torch-fidelity reads the Inception file with ``torch.load(weights_only=False)``; the file is first read
here with ``weights_only=True`` (which refuses anything but tensors and containers) and the resulting
state dict is loaded strictly into the extractor again, so no pickled code is trusted.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn

from interp.metrics.base import Metric, batches, check_images
from interp.metrics.settings import MetricSettings
from interp.metrics.weights import INCEPTION, CorruptWeightsError, file_record, load_torch_state_dict, resolve

FEATURE_DIM = 2048
KID_DEFAULT_SUBSET = 1000


class _StoredFeatures(nn.Module):
    """Identity 'feature extractor' so torchmetrics' FID/KID consume precomputed features."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _as_features(x, name: str) -> torch.Tensor:
    arr = np.asarray(x)
    if arr.ndim != 2 or arr.shape[0] < 2:
        raise ValueError(f"{name} must be a (n_images >= 2, n_features) array, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} has non-finite values")
    return torch.from_numpy(arr.astype(np.float64))


def fid_from_features(features_a, features_b, method: str = "torchmetrics") -> float:
    """FID between two feature sets (rows = images), in float64.

    ``method="torchmetrics"`` (default) is torchmetrics' ``FrechetInceptionDistance`` (eigenvalues of the
    2048 x 2048 product of covariances: seconds per call on a CPU). ``method="lowrank"`` gives the same
    number from an SVD of an n_a x n_b matrix, for the many resamples of a bootstrap (see
    ``fid_lowrank``).
    """
    a, b = _as_features(features_a, "features_a"), _as_features(features_b, "features_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sizes differ: {a.shape[1]} vs {b.shape[1]}")
    if method == "lowrank":
        return fid_lowrank(a.numpy(), b.numpy())
    if method != "torchmetrics":
        raise ValueError(f"method must be 'torchmetrics' or 'lowrank', got {method!r}")
    from torchmetrics.image.fid import FrechetInceptionDistance

    metric = FrechetInceptionDistance(feature=_StoredFeatures(a.shape[1]))
    metric.update(a, real=True)
    metric.update(b, real=False)
    return float(metric.compute())


def fid_lowrank(a: np.ndarray, b: np.ndarray) -> float:
    """The FID formula evaluated through the centred feature matrices (written here because no library
    offers it, and bootstrap CIs need thousands of FIDs): with A, B the centred rows of each set,
    S_a = A'A / (n_a - 1), S_b = B'B / (n_b - 1), the non-zero eigenvalues of S_a S_b are those of
    M M' / ((n_a - 1)(n_b - 1)) with M = A B', so tr sqrt(S_a S_b) = sum of singular values of M over
    sqrt((n_a - 1)(n_b - 1)). Exact; tested equal to torchmetrics' eigenvalue route."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)
    ca, cb = a - mu_a, b - mu_b
    na, nb = len(a) - 1, len(b) - 1
    trace_sqrt = np.linalg.svd(ca @ cb.T, compute_uv=False).sum() / np.sqrt(na * nb)
    return float(((mu_a - mu_b) ** 2).sum() + (ca**2).sum() / na + (cb**2).sum() / nb - 2 * trace_sqrt)


def kid_subset_size(n_a: int, n_b: int, requested: int | None = None) -> int:
    """KID subset size: the requested (default 1,000) capped by both set sizes."""
    return min(requested or KID_DEFAULT_SUBSET, n_a, n_b)


def kid_from_features(
    features_a, features_b, subsets: int = 100, subset_size: int | None = None, seed: int = 0
) -> dict[str, float]:
    """KID (polynomial kernel, degree 3) between two feature sets: mean and std over random subsets."""
    from torchmetrics.image.kid import KernelInceptionDistance

    a, b = _as_features(features_a, "features_a"), _as_features(features_b, "features_b")
    size = kid_subset_size(len(a), len(b), subset_size)
    metric = KernelInceptionDistance(feature=_StoredFeatures(a.shape[1]), subsets=subsets, subset_size=size)
    metric.update(a, real=True)
    metric.update(b, real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return {"kid_mean": float(mean), "kid_std": float(std), "subset_size": size, "subsets": subsets}


class InceptionFeatures(Metric):
    name = "inception"
    kind = "features"
    outputs = {
        "inception_pool3": "2048-d pool3 features of torch-fidelity's FID Inception, one row per image",
    }
    packages = ("torch", "torchmetrics", "torch-fidelity")
    setting_keys = ("fid_antialias", "kid_subsets", "kid_subset_size")

    def __init__(self, settings: MetricSettings) -> None:
        super().__init__(settings)
        from torchmetrics.image.fid import NoTrainInceptionV3

        path = resolve(INCEPTION, settings)
        state = load_torch_state_dict(path, INCEPTION)  # weights_only=True first
        net = NoTrainInceptionV3(
            name="inception-v3-compat",
            features_list=[str(FEATURE_DIM)],
            feature_extractor_weights_path=str(path),
            antialias=settings.fid_antialias,
        )
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise CorruptWeightsError(f"Inception checkpoint {path} does not match torch-fidelity's: {exc}") from exc
        self.net = net.to(self.device).eval()
        self.weight_files = {"inception_checkpoint": file_record(path)}

    def features(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(N, 2048) float32 features, rows in the order of ``images`` (any sizes; RGB uint8 input)."""
        images = check_images(images)
        by_size: dict[tuple[int, int], list[int]] = defaultdict(list)
        arrays = []
        for i, im in enumerate(images):
            arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
            arrays.append(arr)
            by_size[arr.shape[:2]].append(i)
        out = np.zeros((len(images), FEATURE_DIM), dtype=np.float32)
        with torch.inference_mode():
            for indices in by_size.values():
                for sl in batches(len(indices), self.settings.batch_size):
                    idx = indices[sl]
                    x = torch.from_numpy(np.stack([arrays[i] for i in idx])).permute(0, 3, 1, 2).contiguous()
                    out[idx] = self.net(x.to(self.device)).float().cpu().numpy()
        return out

    def score(self, images: Sequence[Image.Image], prompts: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        return {"inception_pool3": self.features(images)}

    def fid_kid(self, features_a, features_b, seed: int = 0) -> dict[str, float]:
        """FID and KID of two feature sets with this metric's KID settings."""
        kid = kid_from_features(
            features_a,
            features_b,
            subsets=self.settings.kid_subsets,
            subset_size=self.settings.kid_subset_size,
            seed=seed,
        )
        return {"fid": fid_from_features(features_a, features_b), **kid}
