"""xinwen (新闻): Chinese news topic classification and headline generation.

The code lives in the repository folders ``training/`` and ``inference/``, installed as
``xinwen.training`` and ``xinwen.inference``.

``import xinwen`` also registers the headline model (model_type ``xinwen-copy-encoder-decoder``)
with the transformers Auto classes, so ``AutoModelForSeq2SeqLM.from_pretrained(headline_folder)``
loads it with its copy head. Importing transformers and torch takes seconds, and most uses of
xinwen (``xinwen --version``, ``xinwen configs``) need neither, so the registration waits until
transformers itself is imported.
"""
from __future__ import annotations

import importlib.abc
import importlib.util
import logging
import sys

__version__ = "0.1.0"

_COPY_MODEL = "xinwen.inference.headline.copy_model"  # registers itself when imported


def _register_headline_model() -> None:
    try:
        importlib.import_module(_COPY_MODEL)
    except Exception as err:  # never break the user's `import transformers` over this
        logging.getLogger(__name__).warning(
            "could not register the xinwen headline model with transformers' Auto classes (%s); "
            "load headline folders with xinwen.inference.HeadlineGenerator instead", err)


class _AfterTransformersImport(importlib.abc.MetaPathFinder):
    """Runs the registration right after the top-level ``transformers`` module has executed
    (it is complete then, so importing its submodules is safe). One shot: removes itself."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "transformers":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)  # found by the other finders, as usual
        if spec is None or spec.loader is None:
            return spec
        load = spec.loader.exec_module

        def exec_then_register(module):
            load(module)
            _register_headline_model()

        spec.loader.exec_module = exec_then_register
        return spec


if "transformers" in sys.modules:
    _register_headline_model()
elif not any(isinstance(f, _AfterTransformersImport) for f in sys.meta_path):
    sys.meta_path.insert(0, _AfterTransformersImport())
