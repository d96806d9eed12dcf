"""Loading model folders: device choice, path and folder checks with clear errors, optional int8."""
from __future__ import annotations

import json
import logging
import os
import re
import socket
from functools import lru_cache
from pathlib import Path

import torch

from xinwen.inference.encoders.builtin import BUILTIN_PREFIX, resolve_model_path

logger = logging.getLogger(__name__)

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` checked (ValueError naming it, not torch's list of 20 device types or an
    AssertionError from a CPU-only build), else the GPU when there is one."""
    if device:
        try:
            chosen = torch.device(device)
        except (RuntimeError, TypeError):
            raise ValueError(f"device: expected 'cpu', 'cuda', 'cuda:N' or 'mps', got {device!r}") from None
        if chosen.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {device!r}: no CUDA GPU is visible here; fix: pass device='cpu', or "
                             "leave device out (the GPU is used when there is one)")
        return chosen
    if torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


@lru_cache(maxsize=1)
def hub_reachable(timeout: float = 2.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false"):
        return False
    try:
        with socket.create_connection(("huggingface.co", 443), timeout=timeout):
            return True
    except OSError:
        return False


def check_model_source(name_or_path: str | os.PathLike, what: str = "model.name_or_path") -> str:
    """Resolve builtin names; fail fast (not after a ~47 s hub retry) on a path that is not there."""
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(f"{what}: expected a folder path (str or Path), got {type(name_or_path).__name__}")
    name_or_path = os.fspath(name_or_path)
    if not name_or_path.strip():  # Path("") is the working directory: never what was meant
        raise FileNotFoundError(f"{what}: the path is empty; expected a model folder written by `xinwen train`")
    if name_or_path.startswith(BUILTIN_PREFIX):
        return resolve_model_path(name_or_path)
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"{what}: folder {str(path)!r} has no config.json; expected a model folder written by "
                "save_pretrained / `xinwen train`"
            )
        return str(path)
    if path.exists():  # a file where a folder was meant: say so, not "the hub is unreachable"
        raise FileNotFoundError(f"{what}: {name_or_path!r} is a file; expected a model folder written by "
                                "save_pretrained / `xinwen train`")
    # Hub ids are "name" or "org/name"; anything else can only have meant a local path.
    if name_or_path.startswith((".", "/", "~")) or not _HUB_ID.match(name_or_path):
        raise FileNotFoundError(f"{what}: {name_or_path!r} is not an existing folder; check the path")
    if not hub_reachable():
        raise FileNotFoundError(
            f"{what}: {name_or_path!r} is not a local folder and the Hugging Face hub is unreachable "
            "(offline). Use a local folder or 'builtin:multilingual-e5-small'"
        )
    return name_or_path


class ModelFolderError(ValueError):
    """A model folder that is damaged, or not the kind of model it was passed as."""


_SEQ2SEQ_ARCHITECTURES = ("ForConditionalGeneration", "EncoderDecoderModel", "ForSeq2SeqLM")
_PLACEHOLDER_LABEL = re.compile(r"LABEL_\d+")
_DAMAGED = "the folder is damaged. fix: copy it again from where it was trained, or retrain it"


def _read_json(path: Path, what: str, required: bool = True) -> dict:
    if not path.is_file():
        if required:
            raise ModelFolderError(f"{what}: {path.parent} has no {path.name}; expected a model folder written by "
                                   "`xinwen train` (save_pretrained)")
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelFolderError(f"{what}: {path} is not valid JSON ({err}); {_DAMAGED}") from None
    if not isinstance(data, dict):
        raise ModelFolderError(f"{what}: {path} holds a JSON {type(data).__name__}, expected an object; {_DAMAGED}")
    return data


def _is_seq2seq(config: dict) -> bool:
    archs = config.get("architectures") or []
    return bool(config.get("is_encoder_decoder")) or any(str(a).endswith(_SEQ2SEQ_ARCHITECTURES) for a in archs)


def _is_classifier(config: dict) -> bool:
    return any(str(a).endswith("ForSequenceClassification") for a in config.get("architectures") or [])


def check_weights(folder: Path, what: str) -> None:
    """Safetensors weights are there and their headers read (a truncated copy fails here, in
    milliseconds, instead of deep inside transformers)."""
    from safetensors import safe_open

    files = sorted(folder.glob("*.safetensors"))
    if not files and not any(folder.glob("*.onnx")):
        pickles = sorted(p.name for p in folder.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".ckpt"))
        unsafe = f" (only pickle weights {pickles}, which xinwen never loads: unpickling runs code)" if pickles else ""
        raise ModelFolderError(f"{what}: {folder} has no model.safetensors{unsafe}. fix: pass a folder written by "
                               "`xinwen train`, or re-save the model with save_pretrained(safe_serialization=True)")
    for file in files:
        try:
            with safe_open(file, "pt") as handle:
                handle.keys()
        except Exception as err:  # safetensors has its own error type; any failure means unreadable
            raise ModelFolderError(f"{what}: {file} cannot be read ({err}); {_DAMAGED}") from None


def _config_and_settings(folder: Path, what: str) -> tuple[dict, dict]:
    """The folder's config.json (required) and xinwen.json (optional), each checked to be readable."""
    from xinwen.inference.settings import SETTINGS_FILE

    return _read_json(folder / "config.json", what), _read_json(folder / SETTINGS_FILE, what, required=False)


def _architectures(config: dict) -> str:
    return ", ".join(map(str, config.get("architectures") or ["no architectures"]))


def check_classifier_folder(path: str | Path, what: str = "--classifier") -> None:
    """Refuse, before any work, a folder that is not a trained topic classifier: a bare encoder
    or a headline model would load with random LABEL_0/LABEL_1 answers or fail in a traceback.
    Builtin names and hub ids are left to ``check_model_source``."""
    from xinwen.inference.settings import SETTINGS_FILE, ClassifierSettings

    folder = Path(path)
    if not folder.is_dir():
        return
    config, settings = _config_and_settings(folder, what)
    if _is_seq2seq(config) or settings.get("task") == "headline":
        raise ModelFolderError(f"{what} {folder} holds a headline model, not a topic classifier. fix: pass it "
                               "as --headline, and a folder from `xinwen train topic` as --classifier")
    labels = [str(v) for v in (config.get("id2label") or {}).values()]
    if not _is_classifier(config) or all(_PLACEHOLDER_LABEL.fullmatch(v) for v in labels):
        kind = _architectures(config)
        raise ModelFolderError(f"{what} {folder} holds no trained classifier ({kind}; labels {labels or 'none'}): "
                               "expected a topic model with its own labels, e.g. a folder from `xinwen train topic`. "
                               "fix: pass that folder; an encoder is given to training as model.name_or_path")
    check_weights(folder, what)
    _read_json(folder / "xinwen_runtime.json", what, required=False)
    try:
        ClassifierSettings.load(folder)
    except (TypeError, ValueError) as err:
        raise ModelFolderError(f"{what}: {folder / SETTINGS_FILE} has invalid settings ({err}); {_DAMAGED}") from None


def check_headline_folder(path: str | Path, what: str = "--headline") -> None:
    """Refuse, before any work, a folder that is not a headline (sequence-to-sequence) model."""
    folder = Path(path)
    if not folder.is_dir():
        return
    config, settings = _config_and_settings(folder, what)
    if _is_classifier(config) or settings.get("task") == "topic":
        raise ModelFolderError(f"{what} {folder} holds a topic classifier, not a headline model. fix: pass it as "
                               "--classifier, and a folder from `xinwen train headline` as --headline")
    if not _is_seq2seq(config):
        kind = _architectures(config)
        raise ModelFolderError(f"{what} {folder} holds no headline generator ({kind}); expected a "
                               "sequence-to-sequence model, e.g. a folder from `xinwen train headline`")
    check_weights(folder, what)


def quantize_int8(model: torch.nn.Module) -> torch.nn.Module:
    """Dynamic int8 quantization of the linear layers (CPU): weights int8 with one scale per
    output row, activations quantized per batch.

    BERT-style ``*.output.dense`` projections stay fp32: their inputs (the attention context
    and the GELU output) have the outlier-heavy ranges that one per-batch activation scale
    handles worst. On the trained topic model, quantizing every linear layer kept 96.5% of
    fp32's labels on 400 dev articles, skipping these kept 99.25% (docs/benchmarks_scoring.md)."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    names = {name for name, module in model.named_modules()
             if isinstance(module, torch.nn.Linear) and not name.endswith("output.dense")}
    return quantize_dynamic(model, {name: per_channel_dynamic_qconfig for name in names}, dtype=torch.qint8)


def load_classifier_model(path, device: torch.device, quantize: str | None = None, trust_remote_code: bool = False):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from xinwen.inference.encoders.pooling import MeanPooledClassifier, uses_mean_pooling

    source = check_model_source(path, what="classifier path")
    check_classifier_folder(source, what="classifier path")
    tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    model = AutoModelForSequenceClassification.from_pretrained(source, trust_remote_code=trust_remote_code)
    if uses_mean_pooling(model):  # a head fitted on mean-pooled features (inference/encoders/pooling.py)
        model = MeanPooledClassifier(model)
    model.eval()
    if quantize == "int8":
        if device.type != "cpu":
            raise ValueError("quantize='int8' is a CPU optimisation; load on device='cpu'")
        model = quantize_int8(model)
    elif quantize not in (None, "none"):
        raise ValueError(f"quantize: expected None or 'int8', got {quantize!r}")
    return model.to(device), tokenizer
