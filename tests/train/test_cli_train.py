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
    result = _run(
        "train", "--dry-run", "--config", str(path), "--lora-r", "8", "--set", "grpo.loss=dapo", "--engine", "hf"
    )
    assert result.exit_code == 0, result.output
    tree = yaml.safe_load(result.output)
    assert tree["optimizer"]["lr"] == 3e-6 and tree["model"]["lora_r"] == 8
    assert tree["grpo"]["loss"] == "dapo" and tree["rollout"]["engine"] == "hf"
    assert tree["rollout"]["n"] is not None  # auto sizes resolved for this machine


@pytest.mark.parametrize(
    "args, names",
    [
        (["--set", "grpo.loss=ppo"], "grpo.loss"),
        (["--set", "algorithm.lose=dapo"], "algorithm.lose"),
        (["--group-size", "1"], "rollout.n"),
        (["--max-steps", "x"], "--max-steps"),
        (["--engine", "tgi"], "--engine"),
        (["--config", "/nonexistent.yaml"], "nonexistent.yaml"),
        (["--resume", "/nonexistent-run"], "--resume"),
    ],
)
def test_bad_options_exit_2_naming_them(args, names):
    result = _run("train", "--dry-run", *args)
    assert result.exit_code == 2, result.output
    assert names in result.output


@pytest.mark.parametrize(
    "args, says",
    [
        (["--verifier", "nosuch"], "--verifier 'nosuch'"),
        (["--verifier", "math+0.5*nosuch"], "--verifier 'math+0.5*nosuch'"),
        (["--dataset", "nosuch.jsonl"], "--dataset 'nosuch.jsonl'"),
        (["--set", "eval.dataset=nosuch"], "--dataset 'nosuch'"),  # the held-out rows are checked too
        (
            [
                "--algorithm",
                "sft",
                "--dataset",
                "{prefs}",
                "--set",
                "eval.before_after=false",
                "--set",
                "data.limit=1",
                "--verifier",
                "nosuch",
            ],
            "--verifier 'nosuch'",
        ),
    ],
)
def test_a_dry_run_refuses_what_the_run_would_refuse_in_one_line(args, says, tmp_path):
    """--dry-run runs the build's stages that load no model: a config that cannot start exits 2 there."""
    prefs = tmp_path / "prefs.jsonl"
    prefs.write_text(json.dumps({"prompt": "What is 1+1?", "chosen": "2", "rejected": "3"}) + "\n")
    result = _run("train", "--dry-run", "--engine", "hf", *[a.format(prefs=prefs) for a in args])
    assert result.exit_code == 2, result.output
    assert says in result.output and len(result.output.strip().splitlines()) == 1, result.output


def test_plot_writes_a_png(tmp_path):
    rows = [
        {"step": s, "reward_mean": s / 10, "accuracy": s / 20, "time_generate": 1.0, "loss": 0.1} for s in (1, 2, 3)
    ]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "eval.jsonl").write_text(json.dumps({"step": 0, "eval_accuracy": 0.2, "eval_ci95": [0.1, 0.3]}) + "\n")
    result = _run("plot", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert _run("plot", str(tmp_path / "empty")).exit_code == 2


def test_dry_run_shows_the_cpu_defaults_of_the_main_job():
    """`rlvr train --verifier math` on a CPU: the measured defaults (README: why these defaults)."""
    result = _run("train", "--verifier", "math", "--dry-run", "--engine", "hf")
    assert result.exit_code == 0, result.output
    tree = yaml.safe_load(result.output)
    assert tree["algorithm"] == "grpo" and tree["data"]["dataset"] == "arith"
    assert tree["data"]["difficulty"] == "easy" and tree["eval"]["before_after"] is True
    assert tree["eval"]["limit"] >= 100 and tree["eval"]["temperature"] == 0.0
    assert tree["model"]["master_dtype"] == "float32" and tree["reward"]["verifier"] == "math"
    sft = yaml.safe_load(_run("train", "--algorithm", "sft", "--dry-run", "--engine", "hf").output)
    assert sft["algorithm"] == "sft" and sft["optimizer"]["lr"] != tree["optimizer"]["lr"]


def _train_process(tiny_model, out, *extra):
    import os
    import subprocess
    import sys

    args = [
        sys.executable,
        "-m",
        "rlvr",
        "train",
        "--model",
        str(tiny_model),
        "--output",
        str(out),
        "--max-steps",
        "1",
        "--group-size",
        "2",
        "--prompts-per-step",
        "2",
        "--max-new-tokens",
        "8",
        "--verifier",
        "math",
        "--set",
        "eval.limit=4",
        "--set",
        "reward.workers=1",
        "--set",
        "model.dtype=float32",
        *extra,
    ]
    return subprocess.run(
        args, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=600, check=False
    )


#: what engines print on their own: vLLM's log lines, C++ and Python warnings, loading and writing bars
ENGINE_LOG = ("INFO", "WARNING", "Warning", "Loading", "Writing model shards", "it/s]", "vllm")
#: rlvr's own closing-table lines that name the engine (the eval's settings and the command that reproduces it)
OUR_TABLE = ("measured on ", "reproduce with ")


@pytest.mark.slow
def test_the_console_carries_rlvr_lines_only_unless_verbose(tiny_model, tmp_path):
    """Stdout is not a terminal here: one plain line per step, the before/after table at the end, and no
    engine log line on either stream without -v (with -v vLLM's own lines come back)."""
    import importlib.util

    engine = "vllm" if importlib.util.find_spec("vllm") else "hf"
    quiet = _train_process(tiny_model, tmp_path / "quiet", "--engine", engine)
    assert quiet.returncode == 0, quiet.stderr[-3000:]
    console = quiet.stdout + quiet.stderr
    leaked = [
        line
        for line in console.splitlines()
        if any(mark in line for mark in ENGINE_LOG) and " rlvr." not in line and not line.startswith(OUR_TABLE)
    ]
    assert not leaked, leaked[:5]
    assert "step 1/1  reward" in quiet.stdout
    assert "held-out accuracy" in quiet.stdout and "(before)" in quiet.stdout and "(after)" in quiet.stdout
    assert f"final model         {tmp_path / 'quiet' / 'final'}" in quiet.stdout
    summary = json.loads((tmp_path / "quiet" / "summary.json").read_text())
    assert summary["before"]["n"] == 4 and summary["steps"] == 1
    if engine == "vllm":
        verbose = _train_process(tiny_model, tmp_path / "verbose", "--engine", engine, "-v")
        assert verbose.returncode == 0, verbose.stderr[-3000:]
        assert any("INFO" in line and "vllm" in line.lower() for line in (verbose.stdout + verbose.stderr).splitlines())


def test_strict_audit_refuses_a_reward_that_pays_for_known_hacks(tiny_model, tmp_path):
    result = _run(
        "train",
        "--model",
        str(tiny_model),
        "--engine",
        "hf",
        "--verifier",
        "boxed_format",
        "--strict-audit",
        "--output",
        str(tmp_path / "run"),
    )
    assert result.exit_code == 2, result.output
    assert "--strict-audit" in result.output and "known hacks rewarded" in result.output
    assert not (tmp_path / "run" / "checkpoints").exists()  # refused before anything started
