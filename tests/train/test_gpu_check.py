"""The prepared GPU check (benchmarks/gpu_check.py) keeps working while the config changes: its settings
load, its rows differ only in what they name, and one row runs end to end on the CPU."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rlvr.config import load_config

ROOT = Path(__file__).resolve().parents[2]


def _gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GPU_CHECK = _gpu_check()


@pytest.mark.parametrize("row", [r for r in GPU_CHECK.ROWS if "model.quantization" not in GPU_CHECK.ROWS[r][0]])
@pytest.mark.parametrize("small", [True, False])
def test_every_row_is_a_valid_config(row, small, tmp_path):
    settings, _ = GPU_CHECK.ROWS[row]
    config = load_config(None, {**GPU_CHECK.overrides(tmp_path, tmp_path / "out", "cuda", 4, small), **settings})
    assert config.device == "cuda" and config.rollout.engine == "hf" and config.optimizer.max_steps == 4
    assert config.model.master_dtype == "float32" and config.model.dtype == "bfloat16"


def test_the_table_shows_failures_as_rows():
    text = GPU_CHECK.table(
        [
            {"row": "full", "step_s": 0.5, "peak_gib": 3.25, "weights_moved": 1e-4, "loss_finite": True, "wall_s": 40},
            {"row": "qlora", "error": "bitsandbytes is not installed", "wall_s": 2},
        ],
        "NVIDIA H100",
    )
    assert "full" in text and "3.25" in text and "True" in text
    assert "qlora  failed: bitsandbytes is not installed" in text


@pytest.mark.slow
def test_one_row_runs_on_the_cpu(tmp_path):
    from rlvr.models import smollm2_tokenizer_dir

    out = tmp_path / "check.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--tokenizer", str(smollm2_tokenizer_dir())]
    command += ["--device", "cpu", "--small", "--steps", "2", "--rows", "full", "--json", str(out)]
    done = subprocess.run(command, check=False, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    (row,) = json.loads(out.read_text())["rows"]
    assert row["steps"] == 2 and row["loss_finite"] is True and row["weights_moved"] > 0, row
    assert "full" in done.stdout and "failed" not in done.stdout
