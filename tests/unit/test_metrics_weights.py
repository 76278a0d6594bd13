"""Settings and weight files of the metrics: env var read at creation, lookup order, missing and
truncated files, nothing downloaded."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures" / "metrics"))

import metric_helpers as helpers  # noqa: E402

from interp.metrics import MetricSettings, load_metric  # noqa: E402
from interp.metrics.weights import (  # noqa: E402
    ALEXNET,
    CorruptWeightsError,
    MissingWeightsError,
    check_file,
    resolve,
    sha256_of,
)


def test_weights_dir_env_read_at_creation_not_import(monkeypatch, tmp_path):
    monkeypatch.setenv("INTERP_WEIGHTS_DIR", str(tmp_path / "a"))
    assert MetricSettings().weights_dir == tmp_path / "a"
    monkeypatch.setenv("INTERP_WEIGHTS_DIR", str(tmp_path / "b"))
    assert MetricSettings().weights_dir == tmp_path / "b"
    monkeypatch.delenv("INTERP_WEIGHTS_DIR")
    assert MetricSettings().weights_dir == Path("~/.cache/interp/weights").expanduser()
    assert MetricSettings(weights_dir=str(tmp_path)).weights_dir == tmp_path


def test_settings_are_frozen_and_validated(tmp_path):
    s = MetricSettings(weights_dir=tmp_path)
    with pytest.raises(AttributeError):
        s.batch_size = 3  # type: ignore[misc]
    assert s.replace(batch_size=3).batch_size == 3
    with pytest.raises(ValueError, match="hps_version"):
        MetricSettings(weights_dir=tmp_path, hps_version="v3")
    with pytest.raises(ValueError, match="batch_size"):
        MetricSettings(weights_dir=tmp_path, batch_size=0)


@pytest.fixture
def no_network(monkeypatch, tmp_path):
    """Network off: HF offline, caches pointed at empty folders, and any socket connect fails."""
    caches = {name: tmp_path / name for name in ("hf_home", "torch_home", "xdg")}
    for p in caches.values():
        p.mkdir()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(caches["hf_home"]))
    monkeypatch.setenv("TORCH_HOME", str(caches["torch_home"]))
    monkeypatch.setenv("XDG_CACHE_HOME", str(caches["xdg"]))
    monkeypatch.setattr(torch.hub, "_hub_dir", str(caches["torch_home"] / "hub"), raising=False)
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "matplotlib"))  # torchmetrics imports matplotlib

    def refuse(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    return caches


def _files(folders) -> set[Path]:
    return {p for f in folders for p in Path(f).rglob("*") if "matplotlib" not in p.parts}


@pytest.mark.parametrize(
    ("metric", "filename", "key"),
    [
        ("clip_t", "open_clip_model.safetensors", "clip_checkpoint"),
        ("hps", "HPS_v2.1_compressed.pt", "hps_checkpoint"),
        ("image_reward", "ImageReward.pt", "imagereward_checkpoint"),
        ("lpips", "alexnet-owt-7be5be79.pth", "alexnet_checkpoint"),
        ("inception", "weights-inception-2015-12-05-6726825d.pth", "inception_checkpoint"),
        ("blip2_vqa", "blip2-opt-2.7b", "blip2_dir"),
    ],
)
def test_missing_weights_name_file_and_key_and_download_nothing(no_network, tmp_path, metric, filename, key):
    weights = tmp_path / "weights"
    hf_cache = tmp_path / "hf_cache"
    hf_cache.mkdir()
    settings = MetricSettings(
        weights_dir=weights, hf_cache_dir=hf_cache, torch_home=no_network["torch_home"], device="cpu"
    )
    watched = [*no_network.values(), hf_cache, tmp_path]
    before = _files(watched)
    environ = dict(os.environ)
    with pytest.raises(MissingWeightsError) as err:
        load_metric(metric, settings)
    message = str(err.value)
    assert filename in message
    assert f"'{key}'" in message
    assert str(weights) in message
    assert "Nothing was downloaded" in message
    assert _files(watched) == before  # no file appeared anywhere (caches included)
    assert dict(os.environ) == environ  # the library changed no environment variable


def test_explicit_key_wins_and_is_named(tmp_path):
    path = helpers.write_alexnet(tmp_path / "w")
    s = MetricSettings(weights_dir=tmp_path / "elsewhere", alexnet_checkpoint=path, verify_hashes=False)
    assert resolve(ALEXNET, s) == path
    s2 = MetricSettings(weights_dir=tmp_path / "w", alexnet_checkpoint=tmp_path / "nope.pth")
    with pytest.raises(MissingWeightsError, match="alexnet_checkpoint"):
        resolve(ALEXNET, s2)


def test_torch_home_and_hf_cache_lookups(tmp_path):
    path = helpers.write_alexnet(tmp_path / "th")  # <torch_home>/hub/checkpoints/<name>
    s = MetricSettings(weights_dir=tmp_path / "empty", torch_home=tmp_path / "th", verify_hashes=False)
    assert resolve(ALEXNET, s) == path
    # HF cache layout: models--org--name/snapshots/<rev>/<file> + refs/main
    from interp.metrics.weights import IMAGEREWARD_MED_CONFIG

    repo = tmp_path / "hub" / "models--THUDM--ImageReward"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    snap = repo / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (snap / "med_config.json").write_text("{}")
    s = MetricSettings(weights_dir=tmp_path / "empty", hf_cache_dir=tmp_path / "hub")
    assert resolve(IMAGEREWARD_MED_CONFIG, s) == snap / "med_config.json"


def test_truncated_and_wrong_hash_files_are_refused_before_loading(tmp_path):
    path = helpers.write_alexnet(tmp_path)
    s = MetricSettings(weights_dir=tmp_path, verify_hashes=True)
    with pytest.raises(CorruptWeightsError, match="sha256"):  # fabricated file: not torchvision's hash
        resolve(ALEXNET, s)
    assert not sha256_of(path).startswith("7be5be79")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptWeightsError, match="alexnet-owt-7be5be79.pth"):
        check_file(path, ALEXNET, verify_hash=False)
    path.write_bytes(b"")
    with pytest.raises(CorruptWeightsError, match="empty"):
        check_file(path, ALEXNET)


def test_truncated_safetensors_is_refused(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "open_clip_model.safetensors"
    save_file({"a": torch.ones(1000)}, str(path))
    check_file(path)
    data = path.read_bytes()
    path.write_bytes(data[:-100])
    with pytest.raises(CorruptWeightsError, match="truncated"):
        check_file(path)
