"""The R1 recipe on a CPU: SFT cold start on GSM8K traces (recipes/r1-cpu-sft.yaml), then GRPO from
runs/sft/final (recipes/r1-cpu-grpo.yaml), SmolLM2-135M-Instruct. After each stage: held-out GSM8K accuracy
(greedy, 95% Wilson interval) and format compliance, the share of completions with a final-answer box.

    python benchmarks/r1_pipeline.py [--workdir DIR]
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
sys.path.insert(0, str(Path(__file__).parent))
from learning_curve import cpu_kind  # noqa: E402


def compliance(eval_dir: Path) -> float:
    """Share of eval completions that contain a \\boxed{...} final answer."""
    rows = [json.loads(line) for line in (eval_dir / "samples.jsonl").read_text().splitlines() if line.strip()]
    return sum("\\boxed{" in r["completion"] for r in rows) / max(1, len(rows))


def stage(workdir: Path, recipe: str) -> dict:
    started = time.perf_counter()
    done = subprocess.run(
        ["rlvr", "train", "--config", str(RECIPES / recipe)], cwd=workdir, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"{recipe} failed:\n{done.stderr[-3000:]}")
    out = workdir / yaml.safe_load((RECIPES / recipe).read_text())["logging"]["output"]
    summary = json.loads((out / "summary.json").read_text())
    evals = sorted((out / "eval").glob("step_*"))
    return {
        "recipe": recipe,
        "wall_s": time.perf_counter() - started,
        **summary,
        "compliance_before": compliance(evals[0]),
        "compliance_after": compliance(evals[-1]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="rlvr-r1-"))
    workdir.mkdir(parents=True, exist_ok=True)
    kind = cpu_kind()
    sft, grpo = stage(workdir, "r1-cpu-sft.yaml"), stage(workdir, "r1-cpu-grpo.yaml")
    print(
        f"{datetime.date.today()}  CPU {kind['model']} ({kind['capability']}), SmolLM2-135M-Instruct, GSM8K test[:100]"
    )
    print("| stage | accuracy | 95% CI | format compliance | wall s |")
    print("|---|---:|---|---:|---:|")
    b = sft["before"]
    print(
        f"| base model | {b['accuracy']:.1%} | [{b['ci'][0]:.1%}, {b['ci'][1]:.1%}] | "
        f"{sft['compliance_before']:.0%} | |"
    )
    for name, r in (("after SFT cold start", sft), ("after GRPO from SFT", grpo)):
        a = r["after"]
        print(
            f"| {name} | {a['accuracy']:.1%} | [{a['ci'][0]:.1%}, {a['ci'][1]:.1%}] | "
            f"{r['compliance_after']:.0%} | {r['wall_s']:.0f} |"
        )
    (workdir / "r1_pipeline.json").write_text(json.dumps({"sft": sft, "grpo": grpo, "cpu": kind}, indent=2) + "\n")


if __name__ == "__main__":
    main()
