"""`rlvr train --dry-run`, errors that exit 2 naming the option, and `rlvr plot`."""

from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner

from rlvr.cli import main


def _run(*args):
    return CliRunner().invoke(main, list(args))


def test_dry_run_prints_the_effective_config(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("optimizer:\n  lr: 3.0e-6\n")
    result = _run("train", "--dry-run", "--config", str(path), "--lora-r", "8", "--set", "algorithm.loss=dapo",
                  "--engine", "hf")
    assert result.exit_code == 0, result.output
    tree = yaml.safe_load(result.output)
    assert tree["optimizer"]["lr"] == 3e-6 and tree["model"]["lora_r"] == 8
    assert tree["algorithm"]["loss"] == "dapo" and tree["rollout"]["engine"] == "hf"
    assert tree["rollout"]["n"] is not None  # auto sizes resolved for this machine


@pytest.mark.parametrize("args, names", [
    (["--set", "algorithm.loss=ppo"], "algorithm.loss"),
    (["--set", "algorithm.lose=dapo"], "algorithm.lose"),
    (["--group-size", "1"], "rollout.n"),
    (["--max-steps", "x"], "--max-steps"),
    (["--engine", "tgi"], "--engine"),
    (["--config", "/nonexistent.yaml"], "nonexistent.yaml"),
    (["--resume", "/nonexistent-run"], "--resume"),
])
def test_bad_options_exit_2_naming_them(args, names):
    result = _run("train", "--dry-run", *args)
    assert result.exit_code == 2, result.output
    assert names in result.output


def test_plot_writes_a_png(tmp_path):
    rows = [{"step": s, "reward_mean": s / 10, "accuracy": s / 20, "time_generate": 1.0, "loss": 0.1} for s in (1, 2, 3)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "eval.jsonl").write_text(json.dumps({"step": 0, "eval_accuracy": 0.2, "eval_ci95": [0.1, 0.3]}) + "\n")
    result = _run("plot", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert _run("plot", str(tmp_path / "empty")).exit_code == 2
