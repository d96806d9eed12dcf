"""A tiny random BERT encoder + tokenizer folder (the test suite's), for the wheel check's short
training: ``python .ci/make_tiny_encoder.py FOLDER``."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from tiny_models import save_tiny_encoder  # noqa: E402

save_tiny_encoder(Path(sys.argv[1]))
