"""Executions/s of the sandboxes on the 164 HumanEval canonical solutions (each with its tests),
in one run: the docker warm pool vs a fresh container per run (what a plain `docker run` per
sample costs), bubblewrap, and `local` (a bare subprocess with rlimits; not a boundary).

Every contender runs the same programs with the same number of runs in flight (`--workers`),
and every run must pass (canonical solutions are correct), so a fast but broken sandbox shows.
A fresh container costs seconds here (the vfs storage driver copies the image for each one), so
that baseline runs on the first `--fresh-runs` programs only; its rate is per run all the same.

    flock /tmp/rlvr-heavy.lock python benchmarks/sandbox_throughput.py --workers 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from rlvr.data.benchmarks import load_benchmark
from rlvr.sandboxes import Limits, SandboxError, get_sandbox
from rlvr.verifiers.code import build_program

#: contender -> (backend, options); the first is the baseline the others are compared with
CONTENDERS = {
    "docker fresh container": ("docker", {"warm": False}),
    "docker warm pool": ("docker", {"warm": True}),
    "bwrap": ("bwrap", {}),
    "local (no boundary)": ("local", {}),
}
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TARGETS = {"docker warm pool": ("× fresh container", 10.0), "bwrap": ("exec/s", 20.0)}


@dataclass
class Measured:
    contender: str
    runs: int
    passed: int
    seconds: float
    exec_per_s: float
    statuses: dict
    error: str = ""


def programs(data_dir: str | None) -> list[tuple[str, str]]:
    """(program, nonce) per HumanEval problem: canonical solution, tests, the done-marker."""
    out = []
    for example in load_benchmark("humaneval", data_dir=data_dir):
        nonce = secrets.token_hex(8)
        out.append(
            (build_program(example.metadata["canonical_solution"], example.metadata, partial=False, nonce=nonce), nonce)
        )
    return out


def measure(contender: str, jobs: list[tuple[str, str]], *, workers: int, limits: Limits) -> Measured:
    backend, opts = CONTENDERS[contender]
    if backend == "docker":
        opts = {**opts, "pool_size": workers}
    try:
        box = get_sandbox(backend, **opts)
    except SandboxError as err:
        return Measured(contender, 0, 0, 0.0, 0.0, {}, error=str(err))
    with box:
        if backend == "docker" and opts["warm"]:
            box.prestart(limits)  # the pool is started once per training run, not per sample
        box.run("pass", limits=limits)  # first-run costs (page cache, imports) are not timed
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(lambda job: box.run(job[0], limits=limits), jobs))
        seconds = time.perf_counter() - started
    statuses: dict[str, int] = {}
    for result in results:
        statuses[result.status.value] = statuses.get(result.status.value, 0) + 1
    passed = sum(r.ok and nonce in r.stdout for r, (_, nonce) in zip(results, jobs, strict=True))
    return Measured(contender, len(jobs), passed, round(seconds, 2), round(len(jobs) / seconds, 2), statuses)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2, help="runs in flight at once (default: 2)")
    parser.add_argument("--fresh-runs", type=int, default=12, help="programs for the fresh-container baseline")
    parser.add_argument("--repeat", type=int, default=1, help="run the 164 programs this many times (not fresh)")
    parser.add_argument(
        "--data-dir",
        default=os.environ.get("RLVR_DATA_DIR") or str(DEFAULT_DATA),
        help="reference data (default: $RLVR_DATA_DIR, else ../shared/data)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the measurements here")
    parser.add_argument("--only", nargs="*", choices=list(CONTENDERS), default=list(CONTENDERS))
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    jobs = programs(args.data_dir)
    limits = Limits(timeout_s=10.0)
    measured = []
    for contender in args.only:
        subset = jobs[: args.fresh_runs] if contender == "docker fresh container" else jobs * args.repeat
        measured.append(measure(contender, subset, workers=args.workers, limits=limits))
    by_name = {m.contender: m for m in measured}
    baseline = by_name.get("docker fresh container")
    base_rate = baseline.exec_per_s if baseline and not baseline.error else None

    console = Console(width=140)
    console.print(
        f"{platform.node()}: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{args.workers} runs in flight, HumanEval canonical solutions with their tests"
    )
    table = Table(title="sandbox executions/s (same run)")
    for column in ("contender", "runs", "passed", "seconds", "exec/s", "× fresh container", "statuses"):
        table.add_column(column, justify="left" if column in ("contender", "statuses") else "right")
    for m in measured:
        if m.error:
            table.add_row(m.contender, "-", "-", "-", "-", "-", f"unavailable: {m.error[:60]}")
            continue
        ratio = f"{m.exec_per_s / base_rate:.1f}" if base_rate else "-"
        table.add_row(
            m.contender,
            str(m.runs),
            str(m.passed),
            f"{m.seconds:.1f}",
            f"{m.exec_per_s:.2f}",
            ratio,
            ", ".join(f"{k} {v}" for k, v in sorted(m.statuses.items())),
        )
    console.print(table)
    for name, (unit, target) in TARGETS.items():
        m = by_name.get(name)
        if m is None or m.error or (unit.startswith("×") and not base_rate):
            console.print(f"target {name} ≥ {target:g} {unit}: not measured")
            continue
        value = m.exec_per_s / base_rate if unit.startswith("×") else m.exec_per_s
        console.print(f"target {name} ≥ {target:g} {unit}: {value:.1f} → {'met' if value >= target else 'MISSED'}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {"workers": args.workers, "cpus": os.cpu_count(), "results": [asdict(m) for m in measured]}, indent=1
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
