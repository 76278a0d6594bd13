"""LPIPS between paired images (baseline vs edited), with the ``lpips`` package's AlexNet variant.

``lpips.LPIPS(net="alex")`` would fetch the AlexNet trunk through torchvision (a download). Here it is
built with a random trunk (``pnet_rand=True``, no download; its calibrated linear heads still load from
the file shipped inside the ``lpips`` wheel), and the trunk is then filled from the local torchvision
checkpoint ``alexnet-owt-7be5be79.pth``: the file is read with ``weights_only=True``, loaded strictly
into ``torchvision.models.alexnet()`` (so its layout is checked), and its ``features.N`` tensors are
copied into lpips' ``sliceK.N`` modules, again strictly.

Input resolution is fixed and recorded: both images of a pair are resized to ``lpips_size`` x
``lpips_size`` (PIL bicubic, default 512) unless ``lpips_size`` is None (native size; the pair must then
match), converted to RGB and scaled to [-1, 1]. The score is LPIPS v0.1 with spatial averaging.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from interp.metrics.base import Metric, batches, check_images
from interp.metrics.settings import MetricSettings
from interp.metrics.weights import ALEXNET, CorruptWeightsError, file_record, load_torch_state_dict, resolve


def build_lpips(alexnet_state: dict[str, torch.Tensor]):
    """lpips.LPIPS (AlexNet, v0.1) with its trunk loaded from a torchvision AlexNet state dict."""
    import lpips
    import torchvision

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchvision's deprecation notice for lpips' pretrained=False
        net = lpips.LPIPS(net="alex", version="0.1", pnet_rand=True, verbose=False)
    reference = torchvision.models.alexnet(weights=None)
    try:
        reference.load_state_dict(alexnet_state, strict=True)
    except RuntimeError as exc:
        raise CorruptWeightsError(f"AlexNet checkpoint does not match torchvision's alexnet: {exc}") from exc
    trunk = {}
    for key in net.net.state_dict():
        _slice, index, param = key.split(".")
        trunk[key] = alexnet_state[f"features.{index}.{param}"]
    net.net.load_state_dict(trunk, strict=True)
    return net.eval()


def lpips_heads_sha256() -> str:
    """sha256 of the calibrated linear heads shipped in the lpips wheel (recorded for provenance)."""
    data = importlib.resources.files("lpips").joinpath("weights/v0.1/alex.pth").read_bytes()
    return hashlib.sha256(data).hexdigest()


class LPIPS(Metric):
    name = "lpips"
    kind = "pair"
    outputs = {"lpips": "LPIPS v0.1 (AlexNet trunk, calibrated linear heads), spatial mean; 0 = identical"}
    packages = ("torch", "torchvision", "lpips")
    setting_keys = ("lpips_net", "lpips_size")

    def __init__(self, settings: MetricSettings) -> None:
        super().__init__(settings)
        path = resolve(ALEXNET, settings)
        state = load_torch_state_dict(path, ALEXNET)
        self.net = build_lpips(state).to(self.device)
        self.weight_files = {
            "alexnet_checkpoint": file_record(path),
            "lpips_linear_heads": {"name": "lpips/weights/v0.1/alex.pth", "sha256": lpips_heads_sha256()},
        }

    def to_tensor(self, image: Image.Image) -> torch.Tensor:
        image = image.convert("RGB")
        size = self.settings.lpips_size
        if size is not None and image.size != (size, size):
            image = image.resize((size, size), Image.Resampling.BICUBIC)
        x = torch.from_numpy(np.asarray(image, dtype=np.float32).copy()).permute(2, 0, 1) / 255.0
        return x * 2.0 - 1.0

    def score_pairs(self, images_a: Sequence[Image.Image], images_b: Sequence[Image.Image]) -> dict[str, np.ndarray]:
        images_a = check_images(images_a, "images_a")
        images_b = check_images(images_b, "images_b")
        if len(images_a) != len(images_b):
            raise ValueError(f"got {len(images_a)} images_a but {len(images_b)} images_b; pairs must match")
        out = []
        with torch.inference_mode():
            for sl in batches(len(images_a), self.settings.batch_size):
                a = [self.to_tensor(im) for im in images_a[sl]]
                b = [self.to_tensor(im) for im in images_b[sl]]
                for i, (x, y) in enumerate(zip(a, b, strict=True)):
                    if x.shape != y.shape:
                        raise ValueError(
                            f"pair {sl.start + i}: sizes {tuple(x.shape[1:])} and {tuple(y.shape[1:])} "
                            "differ; "
                            "set lpips_size to compare images of different sizes"
                        )
                if len({t.shape for t in a}) == 1:
                    d = self.net(torch.stack(a).to(self.device), torch.stack(b).to(self.device))
                    out.append(d.flatten().float().cpu())
                else:  # native sizes that differ within the batch: one pair at a time
                    for x, y in zip(a, b, strict=True):
                        d = self.net(x[None].to(self.device), y[None].to(self.device))
                        out.append(d.flatten().float().cpu())
        return {"lpips": torch.cat(out).numpy().astype(np.float64) if out else np.zeros(0)}
