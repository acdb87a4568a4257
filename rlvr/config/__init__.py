"""The training configuration: a tree of dataclasses (schema) filled from defaults, a YAML file, then
CLI overrides (load), with "auto" sizes per device and algorithm (defaults)."""

from __future__ import annotations

from rlvr.config.defaults import AUTO, AUTO_BY_ALGORITHM, AUTO_WITH_ENV, AUTO_WITH_ENV_BY_ALGORITHM
from rlvr.config.load import (
    CHOICES,
    RENAMED,
    apply_overrides,
    config_to_dict,
    dump_yaml,
    load_config,
    parse_set,
    resolve_auto,
    validate,
)
from rlvr.config.schema import (
    CheckpointConfig,
    DataConfig,
    DistributedConfig,
    DPOConfig,
    EnvConfig,
    EvalConfig,
    GRPOConfig,
    LoggingConfig,
    ModelConfig,
    OptimizerConfig,
    RewardConfig,
    RFTConfig,
    RMConfig,
    RolloutConfig,
    SFTConfig,
    TrainConfig,
)

__all__ = [
    "AUTO",
    "AUTO_BY_ALGORITHM",
    "AUTO_WITH_ENV",
    "AUTO_WITH_ENV_BY_ALGORITHM",
    "CHOICES",
    "RENAMED",
    "CheckpointConfig",
    "DPOConfig",
    "DataConfig",
    "DistributedConfig",
    "EnvConfig",
    "EvalConfig",
    "GRPOConfig",
    "LoggingConfig",
    "ModelConfig",
    "OptimizerConfig",
    "RFTConfig",
    "RMConfig",
    "RewardConfig",
    "RolloutConfig",
    "SFTConfig",
    "TrainConfig",
    "apply_overrides",
    "config_to_dict",
    "dump_yaml",
    "load_config",
    "parse_set",
    "resolve_auto",
    "validate",
]
