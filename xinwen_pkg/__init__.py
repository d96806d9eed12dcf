"""xinwen (新闻): Chinese news topic classification and headline generation.

The code lives in the repository folders ``training/`` and ``inference/``, installed as
``xinwen.training`` and ``xinwen.inference``.
"""
__version__ = "0.1.0"
