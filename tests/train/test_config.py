"""Training config: defaults, YAML, CLI overrides, validation errors that name the key, auto sizes."""

from __future__ import annotations

import pytest

from rlvr.config import CHOICES, dump_yaml, load_config, parse_set, resolve_auto
from rlvr.errors import InputError
from rlvr.objectives import grpo


def test_yaml_then_overrides_and_round_trip(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("optimizer:\n  lr: 2.0e-6\n  max_steps: 7\nrollout:\n  n: 6\nalgorithm:\n  loss: dapo\n")
    config = load_config(path, {"rollout.n": 3, "model.lora_r": "8"})
    assert (config.optimizer.lr, config.optimizer.max_steps, config.rollout.n, config.model.lora_r) == (2e-6, 7, 3, 8)
    assert config.grpo.loss == "dapo" and config.grpo.beta == 0.0
    again = tmp_path / "saved.yaml"
    again.write_text(dump_yaml(config))
    assert load_config(again) == config


@pytest.mark.parametrize(
    "yaml_text, overrides, message",
    [
        ("rollout:\n  n: two\n", {}, "rollout.n must be int"),
        ("optimizer:\n  lrr: 1\n", {}, "unknown config key 'optimizer.lrr'"),
        ("optimiser:\n  lr: 1\n", {}, "unknown config section 'optimiser'"),
        ("- a\n- b\n", {}, "expected a mapping"),
        ("rollout: [\n", {}, "invalid YAML"),
        ("", {"grpo.loss": "ppo"}, "grpo.loss must be one of grpo, dapo, dr_grpo"),
        ("", {"rollout.n": 1}, "rollout.n must be >= 2"),
        ("", {"optimizer.lr": -1}, "optimizer.lr must be >= 0"),
        ("", {"grpo.clip_eps_low": 1.5}, "clip_eps_low"),
    ],
)
def test_bad_config_is_an_input_error_naming_the_key(tmp_path, yaml_text, overrides, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    with pytest.raises(InputError, match=message.replace("[", r"\[").replace(".", r"\.")):
        load_config(path, overrides)


def test_missing_config_file():
    with pytest.raises(InputError, match="config file not found"):
        load_config("/nonexistent/run.yaml")


def test_parse_set_reads_yaml_scalars():
    assert parse_set(["a.b=3", "c.d=true", "e.f=0.5", "g.h=text"]) == {"a.b": 3, "c.d": True, "e.f": 0.5, "g.h": "text"}
    with pytest.raises(InputError, match=r"section\.key=value"):
        parse_set(["novalue"])


@pytest.mark.parametrize("device, n, tokens, lr, steps", [("cpu", 8, 64, 5e-5, 10), ("cuda", 8, 1024, 1e-5, 50)])
def test_auto_sizes_by_device_keep_explicit_values(device, n, tokens, lr, steps):
    resolved = resolve_auto(load_config(None, {"rollout.prompts_per_step": 2}), device)
    assert (resolved.rollout.n, resolved.rollout.max_new_tokens) == (n, tokens)
    assert (resolved.optimizer.lr, resolved.optimizer.max_steps) == (lr, steps)
    assert resolved.rollout.prompts_per_step == 2
    assert resolved.model.dtype == "auto"  # measured at start-up (rlvr.learner.precision), not guessed here


@pytest.mark.parametrize(
    "algorithm, device, key, value",
    [
        ("sft", "cpu", "rollout.prompts_per_step", 16),
        ("sft", "cuda", "optimizer.max_steps", 200),
        ("dpo", "cpu", "optimizer.lr", 3e-5),
        ("grpo", "cpu", "optimizer.lr", 5e-5),
    ],
)
def test_each_algorithm_has_its_own_auto_values(algorithm, device, key, value):
    resolved = resolve_auto(load_config(None, {"algorithm": algorithm}), device)
    section, leaf = key.split(".")
    assert getattr(getattr(resolved, section), leaf) == value
    explicit = resolve_auto(load_config(None, {"algorithm": algorithm, key: 3}), device)
    assert getattr(getattr(explicit, section), leaf) == 3


def test_choices_match_the_grpo_tables():
    assert set(CHOICES["grpo.advantage"]) == set(grpo.ADVANTAGES)
    assert set(CHOICES["grpo.loss"]) == set(grpo.LOSSES)
    assert set(CHOICES["grpo.kl_estimator"]) == set(grpo.KL_ESTIMATORS)
    assert set(CHOICES["grpo.ratio_level"]) == set(grpo.RATIOS)


@pytest.mark.parametrize(
    "yaml_text, assignment, old, new, value",
    [
        ("algorithm:\n  loss: dapo\n", None, "algorithm.loss", "grpo.loss", "dapo"),
        ("algorithm:\n  name: sft\n", None, "algorithm.name", "algorithm", "sft"),
        ("", "algorithm.loss=dr_grpo", "algorithm.loss", "grpo.loss", "dr_grpo"),
        ("", "algorithm.name=dpo", "algorithm.name", "algorithm", "dpo"),
    ],
)
def test_an_old_key_loads_with_one_warning_naming_the_new_key(tmp_path, caplog, yaml_text, assignment, old, new, value):
    path = tmp_path / "old.yaml"
    path.write_text(yaml_text)
    with caplog.at_level("WARNING", logger="rlvr.config"):
        config = load_config(path, parse_set([assignment] if assignment else []))
    section, _, leaf = new.rpartition(".")
    assert getattr(getattr(config, section) if section else config, leaf) == value
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "\n" not in warnings[0], warnings
    assert f"{old!r} is deprecated, use {new!r}" in warnings[0]


def test_current_keys_load_without_warnings(tmp_path, caplog):
    path = tmp_path / "new.yaml"
    path.write_text("algorithm: sft\ngrpo:\n  loss: dapo\n")
    with caplog.at_level("WARNING", logger="rlvr.config"):
        config = load_config(path, {"grpo.beta": 0.01})
    assert (config.algorithm, config.grpo.loss, config.grpo.beta) == ("sft", "dapo", 0.01)
    assert not caplog.records
