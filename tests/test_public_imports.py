"""The public import paths keep working where modules moved (re-exports for one release), and the
plugin example imports from them unchanged."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "rlvr-plugin-example"


@pytest.mark.parametrize(
    "module, public",
    [
        (
            "rlvr.verifiers",
            ["Registry", "Verifier", "Weighted", "build_verifier", "default_registry", "parse_spec", "register"],
        ),
        (
            "rlvr.verifiers.registry",
            ["Registry", "UnknownVerifier", "VerifierOptionError", "build_verifier", "register"],
        ),
        ("rlvr.verifiers.runner", ["Runner", "RunStats", "VerifierFailureRate", "VerifierStartupError"]),
        ("rlvr.verifiers.audit", ["run_audit"]),
        (
            "rlvr.sandboxes",
            ["BACKENDS", "ExecResult", "ExecStatus", "Limits", "Sandbox", "SandboxError", "get_sandbox"],
        ),
        ("rlvr.data", ["load_benchmark", "load_examples", "load_file", "read_rows", "PromptStream"]),
        (
            "rlvr.config",
            [
                "TrainConfig",
                "load_config",
                "resolve_auto",
                "dump_yaml",
                "parse_set",
                "CHOICES",
                "AUTO",
                "AUTO_BY_ALGORITHM",
                "apply_overrides",
                "config_to_dict",
                "RENAMED",
            ],
        ),
        ("rlvr.errors", ["InputError", "OutputError", "RlvrError"]),
        ("rlvr.io", ["read_jsonl", "append_jsonl", "write_atomic", "write_json", "write_jsonl"]),
        ("rlvr.names", ["ALGORITHMS", "ENGINES", "SANDBOXES", "STYLES", "load"]),
        ("rlvr.algorithms", ["ALGORITHMS", "create_algorithm"]),
    ],
)
def test_public_paths_import(module, public):
    loaded = importlib.import_module(module)
    assert [name for name in public if not hasattr(loaded, name)] == []


def test_the_plugin_example_imports_and_scores_unchanged(monkeypatch):
    from rlvr.types import Example, Status
    from rlvr.verifiers import Verifier

    monkeypatch.syspath_prepend(str(EXAMPLE))
    plugin = importlib.import_module("rlvr_plugin_example")
    verifier = plugin.ContainsKeyword()
    assert isinstance(verifier, Verifier)
    assert verifier.score("It is Paris.", Example("1", "capital?", "paris")).status == Status.CORRECT
