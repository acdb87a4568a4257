"""Verifiers: reward functions whose verdict can be checked, found by name in a registry."""

from rlvr.verifiers.base import Verifier, Weighted
from rlvr.verifiers.registry import Registry, build_verifier, default_registry, parse_spec, register

__all__ = ["Registry", "Verifier", "Weighted", "build_verifier", "default_registry", "parse_spec", "register"]
