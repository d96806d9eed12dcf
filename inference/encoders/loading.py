"""Loading model folders: device choice, path checks with clear errors, optional int8."""
from __future__ import annotations

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


def pick_device(device: str | None = None) -> torch.device:
    if device:
        return torch.device(device)
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


def check_model_source(name_or_path: str, what: str = "model.name_or_path") -> str:
    """Resolve builtin names; fail fast (not after a ~47 s hub retry) on a path that is not there."""
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
    # Hub ids are "name" or "org/name"; anything else can only have meant a local path.
    if name_or_path.startswith((".", "/", "~")) or not _HUB_ID.match(name_or_path):
        raise FileNotFoundError(f"{what}: {name_or_path!r} is not an existing folder; check the path")
    if not hub_reachable():
        raise FileNotFoundError(
            f"{what}: {name_or_path!r} is not a local folder and the Hugging Face hub is unreachable "
            "(offline). Use a local folder or 'builtin:multilingual-e5-small'"
        )
    return name_or_path


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

    source = check_model_source(str(path), what="classifier path")
    tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    model = AutoModelForSequenceClassification.from_pretrained(source, trust_remote_code=trust_remote_code)
    model.eval()
    if quantize == "int8":
        if device.type != "cpu":
            raise ValueError("quantize='int8' is a CPU optimisation; load on device='cpu'")
        model = quantize_int8(model)
    elif quantize not in (None, "none"):
        raise ValueError(f"quantize: expected None or 'int8', got {quantize!r}")
    return model.to(device), tokenizer
