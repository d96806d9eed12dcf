"""The bundled data (annotations, guideline, the articles we wrote), installed as ``xinwen.data``."""
