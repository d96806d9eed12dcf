"""The bundled training configs, installed as ``xinwen.configs``; ``xinwen configs`` lists them."""
