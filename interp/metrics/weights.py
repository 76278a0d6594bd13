"""Weight files of the metrics: where each one is looked for, and checks before anything is loaded.

Each file a metric needs is described once by a ``WeightFile`` (settings key, file name, its place
under the weights directory, where it lives on the Hugging Face hub or in a torch-hub cache, and a
known sha256 prefix where one exists). ``resolve`` looks it up, in this order, and never downloads:

1. the explicit path in the settings key (for example ``settings.hps_checkpoint``);
2. ``settings.weights_dir / relpath``;
3. the Hugging Face cache the user pointed to (``settings.hf_cache_dir``), through
   ``huggingface_hub.try_to_load_from_cache`` (a pure file-system lookup);
4. a torch-hub home the user pointed to (``settings.torch_home / hub / checkpoints``).

A missing file raises ``MissingWeightsError`` naming the file, every place looked at, the settings
key, and how to fetch it. A present file is checked before loading (``check_file``): not empty, and
for the self-describing formats the length is checked against the file's own index (a torch zip
checkpoint must have its central directory at the end, a safetensors file must be as long as its
header says), which catches truncated downloads; where the sha256 prefix is known (torch-hub names
carry it, and torchvision verifies it on download) it is compared too. Checkpoints are then read with
``torch.load(weights_only=True)`` or safetensors, never by unpickling arbitrary objects.
"""

from __future__ import annotations

import hashlib
import json
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from interp.metrics.settings import MetricSettings


class MissingWeightsError(FileNotFoundError):
    """A weight file a metric needs is not on this machine (nothing is downloaded)."""


class CorruptWeightsError(RuntimeError):
    """A weight file exists but is empty, truncated, or has the wrong hash."""


@dataclass(frozen=True)
class WeightFile:
    """One file a metric needs.

    key: the settings key holding an explicit path to it (``MetricSettings.<key>``).
    filename: the file's name as published.
    relpath: where it goes under ``settings.weights_dir``.
    hf_repo: the Hugging Face hub repository that publishes it (for the cache lookup and the docs).
    hf_filename: its path inside that repository (default: ``filename``).
    torch_hub: True when torch hub / torchvision caches it as ``<torch_home>/hub/checkpoints/<filename>``.
    url: where to get it when it is not on the HF hub.
    sha256_prefix: leading hex digits of the file's sha256, where known for certain.
    is_dir: the key names a folder (a tokenizer folder) rather than a file.
    required_files: for a folder, the files that must be in it.
    """

    key: str
    filename: str
    relpath: str
    hf_repo: str | None = None
    hf_filename: str | None = None
    torch_hub: bool = False
    url: str | None = None
    sha256_prefix: str | None = None
    is_dir: bool = False
    required_files: tuple[str, ...] = ()

    def how_to_get(self) -> str:
        if self.hf_repo is not None:
            target = self.relpath.rsplit("/", 1)[0] if "/" in self.relpath else "."
            if self.is_dir:
                files = " ".join(self.required_files)
                return f'hf download {self.hf_repo} {files} --local-dir "$INTERP_WEIGHTS_DIR/{self.relpath}"'
            return (
                f"hf download {self.hf_repo} {self.hf_filename or self.filename} "
                f'--local-dir "$INTERP_WEIGHTS_DIR/{target}"'
            )
        if self.url is not None:
            return f'curl -L -o "$INTERP_WEIGHTS_DIR/{self.relpath}" {self.url}'
        return "see docs/metrics.md"


def candidate_paths(spec: WeightFile, settings: MetricSettings) -> list[Path]:
    """Every place ``resolve`` looks at, in order (the HF cache entry only when it exists)."""
    explicit = getattr(settings, spec.key, None)
    if explicit is not None:
        return [Path(explicit)]
    paths = [settings.weights_dir / spec.relpath]
    if settings.hf_cache_dir is not None and spec.hf_repo is not None:
        paths.extend(_hf_cache_paths(spec, settings.hf_cache_dir))
    if settings.torch_home is not None and spec.torch_hub:
        paths.append(settings.torch_home / "hub" / "checkpoints" / spec.filename)
    return paths


def _hf_cache_paths(spec: WeightFile, cache_dir: Path) -> list[Path]:
    from huggingface_hub import try_to_load_from_cache

    names = spec.required_files if spec.is_dir else (spec.hf_filename or spec.filename,)
    found = []
    for name in names:
        hit = try_to_load_from_cache(repo_id=spec.hf_repo, filename=name, cache_dir=str(cache_dir))
        if isinstance(hit, str):
            found.append(Path(hit).parent if spec.is_dir else Path(hit))
    if spec.is_dir:
        # A folder is usable from the cache only if every required file is in the same snapshot.
        return found[:1] if len(found) == len(names) and len(set(found)) == 1 else []
    return found


def resolve(spec: WeightFile, settings: MetricSettings) -> Path:
    """The local path of ``spec`` after checks; raises MissingWeightsError / CorruptWeightsError."""
    looked = candidate_paths(spec, settings)
    for path in looked:
        if spec.is_dir:
            if path.is_dir() and all((path / f).is_file() for f in spec.required_files):
                for f in spec.required_files:
                    check_file(path / f, spec)
                return path
        elif path.is_file():
            check_file(path, spec, settings.verify_hashes)
            return path
    raise MissingWeightsError(_missing_message(spec, settings, looked))


def _missing_message(spec: WeightFile, settings: MetricSettings, looked: list[Path]) -> str:
    what = f"folder with {', '.join(spec.required_files)}" if spec.is_dir else f"file {spec.filename}"
    places = "\n".join(f"  - {p}" for p in looked)
    searched = []
    if getattr(settings, spec.key, None) is None:
        if settings.hf_cache_dir is None and spec.hf_repo is not None:
            searched.append("the HF cache was not searched (settings key hf_cache_dir is unset)")
        if settings.torch_home is None and spec.torch_hub:
            searched.append("no torch hub home was searched (settings key torch_home is unset)")
    extra = "".join(f"\n  ({s})" for s in searched)
    return (
        f"Missing weight {what} (settings key '{spec.key}'), expected at {settings.weights_dir / spec.relpath}; "
        "give the weights folder with --weights-dir or $INTERP_WEIGHTS_DIR (nothing is downloaded; docs/metrics.md).\n"
        f"Expected location: {settings.weights_dir / spec.relpath} "
        f"(under settings key 'weights_dir', default $INTERP_WEIGHTS_DIR), or set '{spec.key}' "
        f"to its path.\nLooked at:\n{places}{extra}\n"
        f"Nothing was downloaded. On a machine with internet: {spec.how_to_get()}\n"
        f"See docs/metrics.md."
    )


def check_file(path: Path, spec: WeightFile | None = None, verify_hash: bool = True) -> None:
    """Raise CorruptWeightsError if ``path`` is empty, truncated, or has the wrong known hash."""
    key = f" (settings key '{spec.key}')" if spec is not None else ""
    size = path.stat().st_size
    if size == 0:
        raise CorruptWeightsError(f"Weight file {path}{key} is empty.")
    name = path.name
    if name.endswith(".safetensors"):
        _check_safetensors(path, size, key)
    elif name.endswith((".pt", ".pth", ".bin")):
        _check_torch_file(path, key)
    elif name.endswith(".json"):
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise CorruptWeightsError(f"Config file {path}{key} is not valid JSON: {exc}") from exc
    if verify_hash and spec is not None and spec.sha256_prefix:
        digest = sha256_of(path)
        if not digest.startswith(spec.sha256_prefix):
            raise CorruptWeightsError(
                f"Weight file {path}{key} has sha256 {digest[:16]}..., expected a hash starting with "
                f"{spec.sha256_prefix} (truncated or a different file)."
            )


def _check_safetensors(path: Path, size: int, key: str) -> None:
    with path.open("rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise CorruptWeightsError(f"Weight file {path}{key} is truncated (no safetensors header).")
        (n,) = struct.unpack("<Q", head)
        if 8 + n > size:
            raise CorruptWeightsError(f"Weight file {path}{key} is truncated (header runs past the end).")
        try:
            header = json.loads(fh.read(n))
        except ValueError as exc:
            raise CorruptWeightsError(f"Weight file {path}{key} has a corrupt safetensors header.") from exc
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    if 8 + n + end > size:
        raise CorruptWeightsError(
            f"Weight file {path}{key} is truncated: {size} bytes, its header needs {8 + n + end}."
        )


def _check_torch_file(path: Path, key: str) -> None:
    with path.open("rb") as fh:
        magic = fh.read(4)
    if magic[:2] == b"PK":  # torch.save's zip format (torch >= 1.6)
        try:
            with zipfile.ZipFile(path) as zf:
                infos = zf.infolist()
        except (zipfile.BadZipFile, OSError) as exc:
            raise CorruptWeightsError(
                f"Weight file {path}{key} is truncated or corrupt (its zip index is unreadable: {exc})."
            ) from exc
        size = path.stat().st_size
        end = max((i.header_offset + i.compress_size for i in infos), default=0)
        if end > size:
            raise CorruptWeightsError(f"Weight file {path}{key} is truncated.")
    # Legacy (non-zip) pickles carry no index: a truncation shows up as a load error, which
    # load_torch_state_dict reports with the file name.


def sha256_of(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def load_torch_state_dict(path: Path, spec: WeightFile | None = None) -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)`` (or safetensors); no code runs."""
    import torch

    key = f" (settings key '{spec.key}')" if spec is not None else ""
    try:
        if path.name.endswith(".safetensors"):
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any load failure is reported with the file's name
        raise CorruptWeightsError(f"Could not read weight file {path}{key}: {exc}") from exc


def file_record(path: Path) -> dict[str, Any]:
    """What a store records about a weight file: its path, name and size."""
    return {"path": str(path), "name": path.name, "size": path.stat().st_size}


# --- the files -----------------------------------------------------------------------------------

HPS_FILENAMES = {"v2.0": "HPS_v2_compressed.pt", "v2.1": "HPS_v2.1_compressed.pt"}


def hps_file(version: str) -> WeightFile:
    name = HPS_FILENAMES[version]
    return WeightFile(key="hps_checkpoint", filename=name, relpath=f"hpsv2/{name}", hf_repo="xswu/HPSv2")


IMAGEREWARD_CHECKPOINT = WeightFile(
    key="imagereward_checkpoint",
    filename="ImageReward.pt",
    relpath="ImageReward/ImageReward.pt",
    hf_repo="THUDM/ImageReward",
)
IMAGEREWARD_MED_CONFIG = WeightFile(
    key="imagereward_med_config",
    filename="med_config.json",
    relpath="ImageReward/med_config.json",
    hf_repo="THUDM/ImageReward",
)
BERT_TOKENIZER = WeightFile(
    key="bert_tokenizer_dir",
    filename="bert-base-uncased",
    relpath="bert-base-uncased",
    hf_repo="google-bert/bert-base-uncased",
    is_dir=True,
    required_files=("vocab.txt", "tokenizer_config.json"),
)
ALEXNET = WeightFile(
    key="alexnet_checkpoint",
    filename="alexnet-owt-7be5be79.pth",
    relpath="hub/checkpoints/alexnet-owt-7be5be79.pth",
    torch_hub=True,
    url="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
    # torchvision names its files <name>-<first 8 hex of sha256> and checks it on download.
    sha256_prefix="7be5be79",
)
INCEPTION = WeightFile(
    key="inception_checkpoint",
    filename="weights-inception-2015-12-05-6726825d.pth",
    relpath="hub/checkpoints/weights-inception-2015-12-05-6726825d.pth",
    torch_hub=True,
    url="https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth",
    # torch-fidelity does not verify a hash on download, so none is enforced here.
)

BLIP2 = WeightFile(
    key="blip2_dir",
    filename="blip2-opt-2.7b",
    relpath="blip2-opt-2.7b",
    hf_repo="Salesforce/blip2-opt-2.7b",
    is_dir=True,
    required_files=("config.json", "tokenizer_config.json"),
)

OPEN_CLIP_FILENAMES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def clip_file(model: str, pretrained: str, filename: str = OPEN_CLIP_FILENAMES[0]) -> WeightFile:
    """The open_clip checkpoint of (model, pretrained tag), laid out as its HF hub repository."""
    hf_repo = None
    if pretrained:
        from interp.metrics.base import import_clean

        cfg = import_clean("open_clip").get_pretrained_cfg(model, pretrained)
        hub = cfg.get("hf_hub", "") if cfg else ""
        hf_repo = hub.strip("/") or None
    folder = f"open_clip/{model}-{pretrained}" if pretrained else f"open_clip/{model}"
    return WeightFile(key="clip_checkpoint", filename=filename, relpath=f"{folder}/{filename}", hf_repo=hf_repo)


def resolve_clip(settings: MetricSettings, model: str, pretrained: str) -> Path:
    """The open_clip checkpoint: safetensors preferred, the .bin accepted; missing names both."""
    specs = [clip_file(model, pretrained, name) for name in OPEN_CLIP_FILENAMES]
    errors = []
    for spec in specs:
        try:
            return resolve(spec, settings)
        except MissingWeightsError as exc:
            errors.append(str(exc))
            if settings.clip_checkpoint is not None:
                break
    raise MissingWeightsError(errors[0] + f"\n(The alternative name {OPEN_CLIP_FILENAMES[1]} is accepted too.)")
