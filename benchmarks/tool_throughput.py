"""Tool calls/s of `--env python` per sandbox backend, against a plain subprocess per call, in one run;
and, given a training run's folder, the share of its step time spent in tool calls.

The calls are what the tool-reasoning demo's trajectories make: each of a step's trajectories (4
prompts x 8 samples) runs one cell printing an arithmetic result, and a quarter of them a second cell
that reads the first cell's variable (stateful: the environment replays earlier cells). Every contender
gets the same calls with the same number in flight (`--workers`), batched as the trainer batches a
step's calls; every call must print the right number, so a fast but broken contender shows.

The baseline ("subprocess") is what a tool without a sandbox costs: a fresh `python -c` per call with
the earlier cells prepended, no isolation and no limits.

    python benchmarks/tool_throughput.py --workers 2 [--backends docker,bwrap,local] [--run runs/tir-grpo]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rlvr.environments.base import Call, CallStatus
from rlvr.environments.python import PythonEnvironment


def trajectories(n: int, seed: int = 0) -> list[list[tuple[str, str]]]:
    """Per trajectory, its cells and what each must print."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        a, b, c = rng.randint(100, 999), rng.randint(100, 999), rng.randint(10, 99)
        cells = [(f"x = {a} * {b} - {c}\nprint(x)", str(a * b - c))]
        if i % 4 == 0:
            cells.append((f"print(x + {c})", str(a * b)))
        out.append(cells)
    return out


def run_env(backend: str, trajs: list[list[tuple[str, str]]], workers: int) -> tuple[float, int, int]:
    """Seconds for every call through the environment (round r = every trajectory's r-th cell, one batch)."""
    env = PythonEnvironment(backend=backend, workers=workers, timeout=10.0)
    try:
        env.execute([(env.reset(), Call("print(1)"))] * workers)  # start-up off the clock (docker: warm pool)
        states = [env.reset() for _ in trajs]
        calls = ok = 0
        started = time.perf_counter()
        for r in range(max(len(t) for t in trajs)):
            batch = [(states[i], Call(t[r][0])) for i, t in enumerate(trajs) if len(t) > r]
            wanted = [t[r][1] for t in trajs if len(t) > r]
            for obs, want in zip(env.execute(batch), wanted, strict=True):
                calls += 1
                printed = [line for line in obs.text.strip().splitlines() if line != "```"]  # less the closing fence
                ok += obs.status is CallStatus.OK and printed[-1:] == [want]
        return time.perf_counter() - started, calls, ok
    finally:
        env.close()


def run_subprocess(trajs: list[list[tuple[str, str]]], workers: int) -> tuple[float, int, int]:
    """The same calls as a fresh unsandboxed `python -c` each (earlier cells prepended, their output dropped)."""

    def one(job: tuple[list[str], str]) -> bool:
        earlier, want = job
        source = "import contextlib, io\n"
        source += "".join(f"with contextlib.redirect_stdout(io.StringIO()):\n    exec({c!r})\n" for c in earlier[:-1])
        source += earlier[-1]
        done = subprocess.run([sys.executable, "-c", source], capture_output=True, text=True, timeout=10, check=False)
        return done.returncode == 0 and done.stdout.strip().splitlines()[-1:] == [want]

    calls = ok = 0
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for r in range(max(len(t) for t in trajs)):
            jobs = [([c for c, _ in t[: r + 1]], t[r][1]) for t in trajs if len(t) > r]
            results = list(pool.map(one, jobs))
            calls, ok = calls + len(results), ok + sum(results)
    return time.perf_counter() - started, calls, ok


def tool_share(run: Path) -> str:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    tool = sum(r.get("tool_s") or 0.0 for r in rows)
    step = sum(r.get("time_step") or 0.0 for r in rows)
    calls = sum((r.get("tool_calls_mean") or 0.0) * (r.get("completions") or 0) for r in rows)
    return (
        f"{run}: {len(rows)} steps, tool calls {calls:.0f}, tool {tool:.1f} s of {step:.1f} s step time "
        f"({tool / step:.1%}); generate {sum(r.get('time_generate') or 0.0 for r in rows):.1f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--trajectories", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=4, help="steps' worth of calls per contender")
    parser.add_argument("--backends", default="docker,bwrap,local")
    parser.add_argument("--run", type=Path, action="append", default=[], help="a training run folder (tool share)")
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {args.workers} calls in flight")
    trajs = [t for r in range(args.rounds) for t in trajectories(args.trajectories, seed=r)]
    results = {"subprocess": run_subprocess(trajs, args.workers)}
    for backend in args.backends.split(","):
        try:
            results[backend] = run_env(backend, trajs, args.workers)
        except Exception as err:  # noqa: BLE001 - a backend that cannot run here is a row saying why
            print(f"{backend:<11} unavailable: {type(err).__name__}: {err}")
    base_s, base_calls, _ = results["subprocess"]
    print(f"{'contender':<11} {'calls':>6} {'ok':>5} {'seconds':>8} {'calls/s':>8} {'vs subprocess':>14}")
    for name, (seconds, calls, ok) in results.items():
        ratio = (calls / seconds) / (base_calls / base_s)
        print(f"{name:<11} {calls:>6} {ok:>5} {seconds:>8.2f} {calls / seconds:>8.1f} {ratio:>13.2f}x")
    for run in args.run:
        print(tool_share(run))


if __name__ == "__main__":
    main()
