"""`rlvr eval` with the vllm and hf engines on the same problems: accuracy, wall time, tokens/s.

    python benchmarks/eval_engines.py [--gsm8k 200] [--math500 100] [--max-new-tokens 320] [--threads 2]
    python benchmarks/eval_engines.py --hf-before HEAD --gsm8k 20 --math500 0 --samples 2 --temperature 0.7

Greedy decoding by default (`--temperature`, `--samples` for sampled runs), the chat template, the
`math` verifier, through `rlvr.eval.run.run_eval` exactly as `rlvr eval` runs it. Each engine runs
in its own process: in-process vLLM turns `torch.set_num_threads` into a no-op for the whole
process, so both engines get their thread count (`--threads`) set before they start, and neither
inherits the other's settings.

The script takes /tmp/rlvr-heavy.lock itself around engine start-up and every chunk of problems
(do NOT wrap it in `flock`: it would wait on itself), so long hf runs let other heavy jobs in
between; tokens/s is counted over `generate` time only, which always runs inside the lock.
`--no-lock` is for a caller that holds the lock for the whole run (`flock /tmp/rlvr-heavy.lock python
benchmarks/eval_engines.py ... --no-lock`).
Results resume from --out, so an interrupted run continues where it stopped. Prints a markdown
table, the vllm/hf tokens/s ratio, and how often both engines wrote the identical completion.

`--hf-before REV` compares the hf engine of git revision REV (its rlvr/rollout/hf.py, loaded from
`git show`) with the working tree's, in one process, on the same problems, seeds and threads; the
two take turns chunk by chunk, so load from other processes falls on both alike. It prints
after/before tokens/s and how often they wrote the identical completion (greedy: must be 100%).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LOCK = "/tmp/rlvr-heavy.lock"
REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = ("gsm8k", "math500")


@contextlib.contextmanager
def heavy_lock():
    if os.environ.get("RLVR_BENCH_LOCK_HELD") == "1":  # --no-lock: the caller holds it
        yield
        return
    with open(LOCK, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_one(kind: str, args) -> dict:
    """Child process: start one engine, evaluate every benchmark of the plan, save a report."""
    import torch

    torch.set_num_threads(args.threads)  # before the engine: vLLM freezes it at start-up
    from rlvr.data.benchmarks import load_benchmark
    from rlvr.eval.run import run_eval
    from rlvr.rollout import SamplingConfig, create_engine
    from rlvr.verifiers import build_verifier

    verifier = build_verifier("math")
    sampling = SamplingConfig(temperature=args.temperature, max_new_tokens=args.max_new_tokens, seed=0)
    dtype = getattr(args, f"{kind}_dtype")
    with heavy_lock():
        started = time.perf_counter()
        engine = create_engine(kind, args.model, seed=0, max_model_len=args.max_model_len, dtype=dtype)
        startup = time.perf_counter() - started
    report = {
        "engine": kind,
        "dtype": dtype,
        "threads": torch.get_num_threads(),
        "startup_s": round(startup, 2),
        "benchmarks": {},
    }
    chunk = args.chunk if kind == "hf" else 10**9  # vllm is fast enough to hold the lock once
    try:
        for name, n in plan(args).items():
            examples = load_benchmark(name, limit=n)
            for limit in range(min(chunk, n), n + chunk, chunk):
                with heavy_lock():
                    summary = run_eval(
                        engine,
                        examples[: min(limit, n)],
                        verifier,
                        sampling=sampling,
                        samples=args.samples,
                        style="chat",
                        output_dir=Path(args.out) / kind / name,
                        chunk_size=args.chunk_size,
                        run_info={"model": args.model, "benchmark": name},
                        name=f"{kind} {name}",
                    )
            report["benchmarks"][name] = summary
    finally:
        engine.close()
    (Path(args.out) / kind / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    return report


def plan(args) -> dict[str, int]:
    return {name: getattr(args, name) for name in BENCHMARKS if getattr(args, name) > 0}


def agreement(out: Path, name: str, kinds: tuple[str, str] = ("vllm", "hf")) -> tuple[float, float]:
    """Fraction of samples where both engines wrote the identical completion / extracted answer."""
    rows = {}
    for kind in kinds:
        path = out / kind / name / "samples.jsonl"
        rows[kind] = {(r["id"], r["sample"]): r for r in map(json.loads, path.read_text().splitlines())}
    a, b = (rows[kind] for kind in kinds)
    common = sorted(set(a) & set(b))
    same_text = sum(a[i]["completion"] == b[i]["completion"] for i in common)
    same_answer = sum(a[i]["extracted"] == b[i]["extracted"] for i in common)
    return same_text / len(common), same_answer / len(common)


def hf_engine_at(rev: str):
    """The HFEngine class of rlvr/rollout/hf.py at git revision `rev`, imported from `git show`."""
    source = subprocess.run(
        ["git", "show", f"{rev}:rlvr/rollout/hf.py"], cwd=REPO, check=True, capture_output=True, text=True
    ).stdout
    path = Path(tempfile.mkdtemp(prefix="rlvr-hf-before-")) / "hf_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("rlvr_hf_before", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.HFEngine


def compare_hf(args) -> dict[str, dict]:
    """hf at --hf-before against the working tree's hf, taking turns chunk by chunk in one process."""
    import torch

    torch.set_num_threads(args.threads)
    from rlvr.data.benchmarks import load_benchmark
    from rlvr.eval.run import run_eval
    from rlvr.models import resolve_model
    from rlvr.rollout import SamplingConfig, create_engine
    from rlvr.verifiers import build_verifier

    verifier = build_verifier("math")
    sampling = SamplingConfig(temperature=args.temperature, max_new_tokens=args.max_new_tokens, seed=0)
    before = f"hf@{args.hf_before}"
    starts = {
        before: lambda: hf_engine_at(args.hf_before)(
            resolve_model(args.model), seed=0, max_model_len=args.max_model_len, dtype=args.hf_dtype
        ),
        "hf": lambda: create_engine("hf", args.model, seed=0, max_model_len=args.max_model_len, dtype=args.hf_dtype),
    }
    engines, reports = {}, {}
    for label, start in starts.items():
        with heavy_lock():
            started = time.perf_counter()
            engines[label] = start()
            reports[label] = {
                "engine": label,
                "dtype": args.hf_dtype,
                "threads": torch.get_num_threads(),
                "startup_s": round(time.perf_counter() - started, 2),
                "benchmarks": {},
            }
    for name, n in plan(args).items():
        examples = load_benchmark(name, limit=n)
        for limit in range(min(args.chunk, n), n + args.chunk, args.chunk):
            for label, engine in engines.items():
                with heavy_lock():
                    reports[label]["benchmarks"][name] = run_eval(
                        engine,
                        examples[: min(limit, n)],
                        verifier,
                        sampling=sampling,
                        samples=args.samples,
                        style="chat",
                        output_dir=Path(args.out) / label / name,
                        chunk_size=args.chunk_size,
                        run_info={"model": args.model, "benchmark": name},
                        name=f"{label} {name}",
                    )
    return reports


def print_table(reports: dict[str, dict], args) -> None:
    import torch

    decoding = "greedy" if args.temperature == 0 else f"temperature {args.temperature}, {args.samples} samples"
    print(
        f"\n{args.model}, {decoding}, max_new_tokens {args.max_new_tokens}, chat template, math verifier, "
        f"{args.chunk_size} completions per generate call; {platform.machine()} {os.cpu_count()}-core CPU, "
        f"torch CPU capability {torch.backends.cpu.get_cpu_capability()}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n"
    )
    print(
        "| benchmark | engine | dtype | threads | problems | accuracy [95% CI] | completion tokens | "
        "generate s | tokens/s | wall s | start-up s |"
    )
    print("| --- | --- | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    totals = {kind: [0, 0.0] for kind in reports}
    for name in plan(args):
        for kind, report in reports.items():
            s = report["benchmarks"][name]
            t = s["timing"]
            totals[kind][0] += t["completion_tokens"]
            totals[kind][1] += t["generate_s"]
            print(
                f"| {name} | {kind} | {report['dtype'] or 'default'} | {report['threads']} | {s['n_problems']} | "
                f"{s['accuracy']:.1%} [{s['ci95'][0]:.1%}, {s['ci95'][1]:.1%}] | {t['completion_tokens']} | "
                f"{t['generate_s']:.1f} | {t['tokens_per_s']:.1f} | {t['wall_s']:.1f} | {report['startup_s']:.1f} |"
            )
    before = next((kind for kind in reports if kind.startswith("hf@")), None)
    if before is not None:
        print()
        for name in plan(args):
            ratio = (
                reports["hf"]["benchmarks"][name]["timing"]["tokens_per_s"]
                / reports[before]["benchmarks"][name]["timing"]["tokens_per_s"]
            )
            text, answer = agreement(Path(args.out), name, (before, "hf"))
            print(
                f"- {name}: hf (working tree) / {before} tokens/s = {ratio:.2f}x; identical completions {text:.0%}, "
                f"identical extracted answers {answer:.0%}"
            )
    if not {"vllm", "hf"} <= set(reports):
        return
    print()
    for name in plan(args):
        ratio = (
            reports["vllm"]["benchmarks"][name]["timing"]["tokens_per_s"]
            / reports["hf"]["benchmarks"][name]["timing"]["tokens_per_s"]
        )
        text, answer = agreement(Path(args.out), name)
        print(
            f"- {name}: vllm/hf tokens/s = {ratio:.1f}x; identical completions {text:.0%}, "
            f"identical extracted answers {answer:.0%}"
        )
    speed = {kind: tokens / seconds for kind, (tokens, seconds) in totals.items()}
    ratio = speed["vllm"] / speed["hf"]
    print(
        f"- all: vllm {speed['vllm']:.0f} vs hf {speed['hf']:.0f} tokens/s = {ratio:.1f}x "
        f"(target >= 5x: {'met' if ratio >= 5 else 'MISSED'})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="HuggingFaceTB/SmolLM2-135M-Instruct")
    parser.add_argument("--gsm8k", type=int, default=200, help="GSM8K test problems (0 = skip)")
    parser.add_argument("--math500", type=int, default=100, help="MATH-500 problems (0 = skip)")
    parser.add_argument("--max-new-tokens", type=int, default=320)
    parser.add_argument("--max-model-len", type=int, default=2048)
    parser.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    parser.add_argument("--samples", type=int, default=1, help="completions per problem")
    parser.add_argument(
        "--hf-before",
        metavar="REV",
        default=None,
        help="compare the hf engine at git revision REV with the working tree's (no vllm)",
    )
    parser.add_argument("--engines", default="vllm,hf")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of each engine")
    parser.add_argument("--hf-dtype", default=None, help="default: the engine's own (float32)")
    parser.add_argument("--vllm-dtype", default=None, help="default: the engine's own (bfloat16 on CPU)")
    parser.add_argument(
        "--chunk-size", type=int, default=64, help="completions per generate call (rlvr eval's default)"
    )
    parser.add_argument("--chunk", type=int, default=50, help="hf: problems per lock hold")
    parser.add_argument("--out", default="/tmp/rlvr-bench/eval_engines")
    parser.add_argument("--no-lock", action="store_true", help="the caller holds /tmp/rlvr-heavy.lock (flock)")
    parser.add_argument("--one", choices=["hf", "vllm"], help=argparse.SUPPRESS)  # internal: the child process
    args = parser.parse_args()
    os.environ.setdefault("RLVR_DATA_DIR", str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    if args.no_lock:
        os.environ["RLVR_BENCH_LOCK_HELD"] = "1"  # the engine children inherit it
    if args.one:
        run_one(args.one, args)
        return
    if args.hf_before:
        print_table(compare_hf(args), args)
        return
    repo = str(Path(__file__).resolve().parents[1])  # the child runs from benchmarks/: find rlvr
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(args.threads),
        "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
        "PYTHONPATH": os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")])),
    }
    reports = {}
    for kind in args.engines.split(","):
        child = [sys.executable, __file__, "--one", kind, *sys.argv[1:]]
        if subprocess.run(child, env=env, check=False).returncode != 0:
            sys.exit(f"the {kind} run failed (see above); finished samples are kept in {args.out}/{kind}")
        reports[kind] = json.loads((Path(args.out) / kind / "report.json").read_text())
    print_table(reports, args)


if __name__ == "__main__":
    main()
