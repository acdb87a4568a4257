"""Chunked vs dense logprobs + entropy from the final hidden states: peak memory and time, SmolLM2-sized LM head.

    flock /tmp/rlvr-heavy.lock python benchmarks/chunked_logprobs.py [--chunks 256,512,1024] [--repeats 3]

Both paths start from the same hidden states [rows, C, H] and LM-head weight [V, H] (float32,
seed 0; defaults rows 32, C 64, H 576, V 49152 as SmolLM2-135M), and compute per-token logprobs
(with gradient) and entropy (without) at `--temperature`:

- dense: `F.linear(hidden, weight)` -> [rows, C, V] logits -> `rlvr.objectives.logprobs.token_logprobs_and_entropy`,
  what the learner does with the model's logits today;
- chunked:N: `rlvr.objectives.logprobs.chunked_token_logprobs_and_entropy(hidden, weight, tokens, chunk_size=N)`.

"fwd" is a no-grad pass (old/reference logprobs); "fwd+bwd" is a forward with gradient and
backward of a weighted sum of the logprobs (gradients to the hidden states and the weight, as in
full fine-tuning with a tied LM head). Each path runs in its own subprocess. Peak memory = the
process's peak RSS (getrusage) minus its RSS once the inputs exist (psutil): what the computation
adds, the weight's gradient (V×H float32, the same for both) included. Time = median wall seconds
over `--repeats` runs after the measured one. The last columns compare each path's logprobs and
hidden-state gradient with the dense path's from the same run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table

from rlvr.objectives import logprobs as lp

MIB = 2**20


def _inputs(args: argparse.Namespace) -> dict:
    gen = torch.Generator().manual_seed(0)
    return dict(
        hidden=torch.randn(args.rows, args.positions, args.hidden, generator=gen).requires_grad_(True),
        weight=torch.randn(args.vocab, args.hidden, generator=gen).mul_(0.05).requires_grad_(True),  # no temporary
        tokens=torch.randint(0, args.vocab, (args.rows, args.positions), generator=gen),
        upstream=torch.randn(args.rows, args.positions, generator=gen),
    )


def _dense(t: dict, temperature: float, chunk: int):
    logits = F.linear(t["hidden"], t["weight"])
    return lp.token_logprobs_and_entropy(logits, t["tokens"], temperature)


def _chunked(t: dict, temperature: float, chunk: int):
    return lp.chunked_token_logprobs_and_entropy(t["hidden"], t["weight"], t["tokens"], temperature, chunk_size=chunk)


PATHS = {"dense": _dense, "chunked": _chunked}


def _forward(fn, t: dict, args: argparse.Namespace, chunk: int) -> None:
    with torch.no_grad():
        fn(t, args.temperature, chunk)


def _train(fn, t: dict, args: argparse.Namespace, chunk: int) -> torch.Tensor:
    t["hidden"].grad = t["weight"].grad = None
    logprobs, _ = fn(t, args.temperature, chunk)
    (logprobs * t["upstream"]).sum().backward()
    return logprobs.detach()


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def _seconds(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def child(args: argparse.Namespace) -> dict:
    """One path in this process: peak extra RSS of fwd, then of fwd+bwd (the peak only grows, so the
    smaller one is measured first), then the timings; saves logprobs and hidden grad for comparison."""
    name, _, chunk = args.child.partition(":")
    fn, chunk = PATHS[name], int(chunk or 0)
    t = _inputs(args)
    base = psutil.Process().memory_info().rss
    if _peak_rss() > base + 16 * MIB:
        raise RuntimeError("peak RSS before the run is above the current RSS: the baseline would be wrong")
    _forward(fn, t, args, chunk)
    peak_fwd = _peak_rss() - base
    logprobs = _train(fn, t, args, chunk)
    peak_train = _peak_rss() - base
    torch.save(dict(logprobs=logprobs, grad=t["hidden"].grad), args.save)
    fwd = [_seconds(lambda: _forward(fn, t, args, chunk)) for _ in range(args.repeats)]
    train = [_seconds(lambda: _train(fn, t, args, chunk)) for _ in range(args.repeats)]
    return dict(
        path=args.child,
        peak_fwd_mib=peak_fwd / MIB,
        peak_train_mib=peak_train / MIB,
        fwd_s=statistics.median(fwd),
        train_s=statistics.median(train),
        threads=torch.get_num_threads(),
    )


def _machine() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    flags = cpuinfo.read_text().split("flags")[1].splitlines()[0].split() if cpuinfo.exists() else []
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout.splitlines()
            if line.startswith("Model name")
        ),
        platform.processor(),
    )
    shown = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile") if f in flags]
    return (
        f"{model}, {psutil.cpu_count()} CPUs, {psutil.virtual_memory().total / 2**30:.0f} GiB; flags "
        f"{' '.join(shown)}; torch {torch.__version__} cpu capability {torch.backends.cpu.get_cpu_capability()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=32)
    parser.add_argument("--positions", type=int, default=64, help="completion positions per row (C)")
    parser.add_argument("--hidden", type=int, default=576)
    parser.add_argument("--vocab", type=int, default=49152)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--chunks", default="256,512,1024", help="chunk sizes (positions) of the chunked path")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--save", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return

    names = ["dense"] + [f"chunked:{size}" for size in args.chunks.split(",")]
    shared = ("rows", "positions", "hidden", "vocab", "temperature", "repeats")
    passed = [f"--{key}={getattr(args, key)}" for key in shared]
    rows, saved = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            save = str(Path(tmp) / f"{name.replace(':', '_')}.pt")
            out = subprocess.run(
                [sys.executable, __file__, *passed, "--child", name, "--save", save],
                capture_output=True,
                text=True,
                check=False,
            )
            if out.returncode:
                raise SystemExit(f"{name} failed:\n{out.stderr}")
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            saved[name] = torch.load(save)
    dense = rows[0]
    table = Table(
        title=f"logprobs + entropy, rows {args.rows} × C {args.positions} × V {args.vocab}, "
        f"H {args.hidden}, "
        f"float32, T {args.temperature}, torch threads {dense['threads']}"
    )
    for column in (
        "path",
        "peak fwd MiB",
        "× dense",
        "peak fwd+bwd MiB",
        "× dense",
        "fwd s",
        "× dense",
        "fwd+bwd s",
        "× dense",
        "max |Δ logp|",
        "max |Δ grad h|",
    ):
        table.add_column(column, justify="left" if column == "path" else "right")
    for row in rows:
        ours = saved[row["path"]]
        table.add_row(
            row["path"],
            f"{row['peak_fwd_mib']:.0f}",
            f"{row['peak_fwd_mib'] / dense['peak_fwd_mib']:.2f}",
            f"{row['peak_train_mib']:.0f}",
            f"{row['peak_train_mib'] / dense['peak_train_mib']:.2f}",
            f"{row['fwd_s']:.3f}",
            f"{row['fwd_s'] / dense['fwd_s']:.2f}",
            f"{row['train_s']:.3f}",
            f"{row['train_s'] / dense['train_s']:.2f}",
            f"{(ours['logprobs'] - saved['dense']['logprobs']).abs().max().item():.1e}",
            f"{(ours['grad'] - saved['dense']['grad']).abs().max().item():.1e}",
        )
    console = Console(width=160)
    console.print(f"machine: {_machine()}")
    console.print(f"date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC")
    console.print(table)


if __name__ == "__main__":
    main()
