"""Deprecated module path, kept so that ``accelerate launch -m xinwen.inference.score_cli`` keeps working.

Use ``-m xinwen.inference.scoring.cli`` (the module moved when the package was grouped by subject).
"""
import sys
import warnings

from xinwen.inference.scoring.cli import main

if __name__ == "__main__":
    warnings.warn("xinwen.inference.score_cli is deprecated; run `-m xinwen.inference.scoring.cli` instead",
                  FutureWarning, stacklevel=1)
    sys.exit(main())
