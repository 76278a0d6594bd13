"""A built-in pipeline saved with ``save_pretrained`` loads back through ``interp.pipelines.load`` with no
network access and generates the bit-identical image."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import huggingface_hub.constants
import pytest
import torch

import interp.pipelines as pipelines


def _no_network(*args, **kwargs):
    raise OSError("network access attempted during an offline load")


def test_tiny_sd3_save_and_load_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read at import time
    monkeypatch.setattr(socket.socket, "connect", _no_network)
    pipe = pipelines.tiny("sd3")
    pipe.save_pretrained(tmp_path / "tiny-sd3")
    loaded = pipelines.load(tmp_path / "tiny-sd3")
    loaded_from_str = pipelines.load(str(tmp_path / "tiny-sd3"), dtype=torch.float32)
    assert type(loaded) is type(pipe)
    for key, component in pipe.components.items():
        other = loaded.components[key]
        if isinstance(component, torch.nn.Module):
            assert not any(m.training for m in other.modules())
            sa, sb = component.state_dict(), other.state_dict()
            assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
        elif key.startswith("tokenizer"):
            definition, loaded_definition = (json.loads(t.backend_tokenizer.to_str()) for t in (component, other))
            for part in ("model", "normalizer", "pre_tokenizer", "post_processor", "decoder", "added_tokens"):
                assert definition[part] == loaded_definition[part], (key, part)
            assert component.pad_token == other.pad_token
    kwargs = pipelines.tiny_call_kwargs("sd3")
    images = [
        p("a photo of a cat", generator=torch.Generator().manual_seed(3), output_type="pt", **kwargs).images
        for p in (pipe, loaded, loaded_from_str)
    ]
    assert torch.equal(images[0], images[1]) and torch.equal(images[0], images[2])


@pytest.mark.slow
def test_tiny_images_identical_across_processes(tmp_path):
    """Two interpreters with different hash seeds (set/dict order) build the same pipelines and images."""
    script = (
        "import hashlib, torch\n"
        "import interp.pipelines as P\n"
        "for n in P.SUPPORTED_TINY:\n"
        "    p = P.tiny(n)\n"
        "    g = torch.Generator().manual_seed(0)\n"
        "    out = p('a photo of a cat', generator=g, output_type='pt', **P.tiny_call_kwargs(n))\n"
        "    img = out.frames if hasattr(out, 'frames') else out.images\n"
        "    print(n, hashlib.sha256(img.numpy().tobytes()).hexdigest())\n"
    )
    root = Path(__file__).resolve().parents[2]
    outputs = []
    for hash_seed in ("1", "2"):
        env = os.environ | {"PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(root)}
        result = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True, cwd=tmp_path
        )
        outputs.append(result.stdout)
    assert outputs[0] == outputs[1]
    assert len(outputs[0].splitlines()) == len(pipelines.SUPPORTED_TINY)
