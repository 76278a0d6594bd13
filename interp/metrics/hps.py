"""HPS-v2 / v2.1: the HPS checkpoint on upstream open_clip's ViT-H-14, with HPS's evaluation preprocessing.

The ``hpsv2`` package from PyPI is not usable as a dependency (its wheel lacks the BPE vocabulary, it
pins pytest 7.2.0 and protobuf<4 at run time, downloads a 3.9 GB backbone it then overwrites, and
reloads the checkpoint on every call). Its model is a fork of open_clip whose ViT-H-14 has the same
state-dict keys and shapes and the same forward as upstream ``open_clip_torch``, so the checkpoint
(``{"state_dict": ...}``) loads strictly into ``open_clip.create_model("ViT-H-14", pretrained=<file>)``.

What differs is the preprocessing. ``hpsv2.img_score`` uses its fork's ``image_transform(224,
is_train=False, resize_longest_max=True)``: convert to RGB, ``ToTensor`` *first*, then resize the
float tensor so the longest side is 224 (bicubic; ``round(side * scale)``), pad right/bottom-biased
with zeros to 224 x 224, then normalise with OpenAI's mean/std. Upstream open_clip has no transform
with this order (its ``resize_mode="longest"`` resizes the PIL image, which gives different pixels),
so ``HPSPreprocess`` below writes it out. torchvision's tensor resize antialiases by default since
0.17 (what the package does when installed today); ``settings.hps_antialias=False`` reproduces
torchvision < 0.17. The score is the cosine of the normalised embeddings (``image @ text.T``
diagonal), as in ``hpsv2.score``. The package runs the model under CUDA autocast on GPU; this
adapter computes in float32 everywhere.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torchvision.transforms import InterpolationMode

from interp.metrics.base import Metric, check_images, check_prompts, import_clean
from interp.metrics.clip_t import check_offline_tokenizer, encode_images, encode_texts
from interp.metrics.settings import MetricSettings
from interp.metrics.weights import CorruptWeightsError, file_record, hps_file, resolve

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


class HPSPreprocess:
    """HPS's evaluation transform (``hpsv2.src.open_clip.transform.image_transform`` with
    ``resize_longest_max=True``), written out because no maintained library has this order."""

    def __init__(self, size: int = 224, antialias: bool = True, mean=OPENAI_MEAN, std=OPENAI_STD) -> None:
        self.size = size
        self.antialias = antialias
        self.mean = mean
        self.std = std

    def __call__(self, image: Image.Image) -> torch.Tensor:
        # The package keeps RGBA (and then fails in the 3-channel model); everything becomes RGB here.
        if image.mode != "RGB":
            image = image.convert("RGB")
        x = TF.to_tensor(image)
        height, width = x.shape[1:]
        scale = self.size / float(max(height, width))
        if scale != 1.0 or height != width:
            new_h, new_w = round(height * scale), round(width * scale)
            if scale != 1.0:
                x = TF.resize(x, [new_h, new_w], InterpolationMode.BICUBIC, antialias=self.antialias)
            pad_h, pad_w = self.size - new_h, self.size - new_w
            x = TF.pad(x, [pad_w // 2, pad_h // 2, pad_w - pad_w // 2, pad_h - pad_h // 2], fill=0)
        return TF.normalize(x, self.mean, self.std)


class HPS(Metric):
    name = "hps"
    packages = ("torch", "torchvision", "open_clip_torch")
    setting_keys = ("hps_version", "hps_model", "hps_antialias")

    def __init__(self, settings: MetricSettings) -> None:
        super().__init__(settings)
        open_clip = import_clean("open_clip")

        check_offline_tokenizer(settings.hps_model)
        spec = hps_file(settings.hps_version)
        path = resolve(spec, settings)
        # open_clip's loader: torch.load(weights_only=True), takes checkpoint["state_dict"], strict=True.
        try:
            model = open_clip.create_model(
                settings.hps_model, pretrained=str(path), device=self.device, weights_only=True
            )
        except (RuntimeError, KeyError, ValueError, AssertionError, pickle.UnpicklingError) as exc:
            raise CorruptWeightsError(
                f"Could not load {path} (settings key 'hps_checkpoint') into open_clip {settings.hps_model!r}: {exc}"
            ) from exc
        self.model = model.eval()
        self.tokenizer = open_clip.get_tokenizer(settings.hps_model)
        image_size = self.model.visual.image_size
        size = image_size[0] if isinstance(image_size, (tuple, list)) else image_size
        self.preprocess = HPSPreprocess(size=size, antialias=settings.hps_antialias)
        self.key = "hps_" + settings.hps_version.replace(".", "_")
        self.outputs = {self.key: f"HPS {settings.hps_version}: cosine of the HPS image and text embeddings"}
        self.weight_files = {"hps_checkpoint": file_record(path)}

    def score(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> dict[str, np.ndarray]:
        images = check_images(images)
        prompts = check_prompts(prompts, len(images))
        bs = self.settings.batch_size
        with torch.inference_mode():
            img = encode_images(self.model, self.preprocess, images, self.device, bs)
            txt = encode_texts(self.model, self.tokenizer, prompts, self.device, bs)
            cos = (img * txt).sum(dim=-1)
        return {self.key: cos.cpu().numpy().astype(np.float64)}
