"""Training configs: typed sections (``sections``), YAML + dotted overrides and validation (``loading``)."""
from xinwen.training.config.loading import ConfigError
from xinwen.training.config.sections import HeadlineConfig, TopicConfig, load_config

__all__ = ["ConfigError", "HeadlineConfig", "TopicConfig", "load_config"]
