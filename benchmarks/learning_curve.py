"""Does the main job learn? `rlvr train --verifier math` exactly as a new user runs it (an empty folder, no other
flag, the whole process timed from outside), then `rlvr plot`: held-out accuracy before → after with 95%
Wilson intervals from DIR/summary.json, wall time, and the CPU kind the numbers came from.

    python benchmarks/learning_curve.py                         # the default run
    python benchmarks/learning_curve.py --algorithm sft         # any algorithm's default run
    python benchmarks/learning_curve.py -- --set eval.every=5   # extra `rlvr train` flags after --
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def cpu_kind() -> dict:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json; from rlvr.learner.precision import cpu_kind; print(json.dumps(cpu_kind()))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def run_default(algorithm: str, extra: list[str], keep: Path | None) -> dict:
    """One default run in a fresh folder; returns its summary.json plus the measured process wall time."""
    folder = Path(tempfile.mkdtemp(prefix=f"rlvr-default-{algorithm}-"))
    args = ["rlvr", "train", "--verifier", "math", *(["--algorithm", algorithm] if algorithm != "grpo" else []), *extra]
    started = time.perf_counter()
    done = subprocess.run(args, cwd=folder, capture_output=True, text=True, env={**os.environ}, check=False)
    wall = time.perf_counter() - started
    (folder / "console.txt").write_text(done.stdout + "\n--- stderr ---\n" + done.stderr)
    if done.returncode != 0:
        raise SystemExit(
            f"{' '.join(args)} failed ({done.returncode}); see {folder / 'console.txt'}:\n{done.stderr[-2000:]}"
        )
    run = folder / "runs" / "train"
    subprocess.run(["rlvr", "plot", str(run), "--output", str(run / "curves.png")], check=True, capture_output=True)
    summary = json.loads((run / "summary.json").read_text())
    steps = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    result = {
        "algorithm": algorithm,
        "command": " ".join(args),
        "process_wall_s": wall,
        **summary,
        "median_step_s": sorted(s["time_step"] for s in steps)[len(steps) // 2],
        "console_lines": len(done.stdout.splitlines()) + len(done.stderr.splitlines()),
        "folder": str(folder),
        "png": str(run / "curves.png"),
    }
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        (keep / f"{algorithm}.json").write_text(json.dumps(result, indent=2) + "\n")
        (keep / f"{algorithm}_curves.png").write_bytes((run / "curves.png").read_bytes())
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algorithm", default="grpo", choices=["grpo", "sft", "rft", "dpo"])
    parser.add_argument("--keep", type=Path, default=None, help="copy summary JSON and the PNG here")
    parser.add_argument("extra", nargs="*", help="more `rlvr train` flags (after --)")
    args = parser.parse_args()
    kind = cpu_kind()
    r = run_default(args.algorithm, args.extra, args.keep)
    print(
        f"{datetime.date.today()}  CPU {kind['model']} ({kind['capability']}, avx512_bf16={kind['avx512_bf16']}, "
        f"amx={kind['amx']}), torch {kind['torch']}"
    )
    print(f"command: {r['command']}  (from an empty folder)")
    for name in ("before", "after"):
        b = r[name]
        print(f"{name:<8}{b['accuracy']:7.1%}  [{b['ci'][0]:.1%}, {b['ci'][1]:.1%}]  n={b['n']}")
    print(f"gain {r['gain'] * 100:+.1f} points; intervals separated: {r['separated']} (target: >= +10, separated)")
    print(
        f"steps {r['steps']}, median {r['median_step_s']:.1f} s/step, process wall {r['process_wall_s']:.0f} s "
        f"(target <= 600 s), console lines {r['console_lines']}; curve {r['png']}"
    )


if __name__ == "__main__":
    main()
