"""Multi-turn environments (the python tool first): the contract, and a registry with entry points."""

from rlvr.environments.base import Call, CallStatus, Environment, EnvironmentBroken, Observation
from rlvr.environments.registry import build_environment, default_registry, register_environment

__all__ = [
    "Call",
    "CallStatus",
    "Environment",
    "EnvironmentBroken",
    "Observation",
    "build_environment",
    "default_registry",
    "register_environment",
]
