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
time. rlvr runs `rlvr eval --style lm-eval` with the same model, float32,
greedy. Per problem it reports: identical prompts (byte for byte), identical completions,
identical strict-match / flexible-extract answers, the same stock verdicts, rlvr's `math`
verdict vs lm-eval's, and wall time. `--python` picks the interpreter that has lm-eval (a venv
is fine: this checkout's rlvr is put on PYTHONPATH).
"""

from __future__ import annotations

import argparse
import ast
import datetime
import glob
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's rlvr, installed or not
LOCK = "/tmp/rlvr-heavy.lock"
CHUNK_S = 530  # each locked lm-eval command stays under 9 minutes
#: our task name -> (lm-eval's stock yaml, rlvr benchmark, data files)
TASKS = {
    "gsm8k": ("gsm8k/gsm8k.yaml", "gsm8k", {"train": "gsm8k/train.jsonl", "test": "gsm8k/test.jsonl"}),
    "minerva_math500": ("minerva_math/minerva_math500.yaml", "math500", {"test": "math500/test.jsonl"}),
}

#: run by the lm-eval interpreter: lm-eval's own filters and metrics on the completions its `hf` run
#: left in its request cache (used when a run did not finish: the finished documents still compare)
CACHED = r"""
import json, sys
from sqlitedict import SqliteDict
from lm_eval.api.model import hash_args
from lm_eval.api.metrics import exact_match_hf_evaluate
from lm_eval.filters.extraction import RegexFilter
from lm_eval.tasks._yaml_loader import load_yaml
cache, task_yaml, requests = sys.argv[1], sys.argv[2], json.load(open(sys.argv[3]))
config = load_yaml(task_yaml)
db = SqliteDict(cache)
out = []
for request in requests:
    context, kwargs = request["prompt"], request["gen_kwargs"]
    until = list(kwargs["until"])
    keys = [hash_args("generate_until", (context, kwargs)),
            hash_args("generate_until", (context, {**kwargs, "until": until + ["<|im_end|>"]}))]
    found = next((db[k] for k in keys if k in db), None)
    if found is None:
        out.append(None)
        continue
    metrics = {}
    if "filter_list" in config:  # gsm8k: each filter, then exact_match with the task's options
        options = {
            k: v for k, v in config["metric_list"][0].items() if k not in ("metric", "aggregation", "higher_is_better")
        }
        for f in config["filter_list"]:
            regex = RegexFilter(**{k: v for k, v in f["filter"][0].items() if k != "function"})
            answer = list(regex.apply([[found]], [None]))[0][0]
            right = exact_match_hf_evaluate([answer], [request["target"]], **options)["exact_match"]
            metrics[f["name"]] = [answer, bool(right)]
    else:  # minerva: the task's own process_results on the document as its process_docs builds it
        utils = sys.modules[config["process_results"].__module__]
        solution = request["doc"]["solution"]
        doc = {"problem": request["doc"]["problem"], "solution": solution,
               "answer": utils.normalize_final_answer(utils.remove_boxed(utils.last_boxed_only_string(solution)))}
        result = config["process_results"](doc, [found])
        metrics["math_verify"] = [None, bool(result["math_verify"])]
    out.append({"completion": found, "metrics": metrics})
print(json.dumps(out))
"""


def task_yaml(name: str, stock: Path, data: Path) -> str:
    """lm-eval's own task, with only the data location changed (the Hub is unreachable here)."""
    files = "".join(f"    {split}: {data / path}\n" for split, path in TASKS[name][2].items())
    return (
        f"include: {stock}\ntask: {name}_local\ntag: []\ndataset_path: json\ndataset_name: null\n"
        f"dataset_kwargs:\n  data_files:\n{files}"
    )


def locked(cmd: list[str], env: dict[str, str], log: Path, timeout_s: int | None = None) -> tuple[int, float]:
    """Run under the heavy lock; (exit code, seconds of the command itself, lock wait excluded)."""
    limit = ["timeout", "-s", "INT", str(timeout_s)] if timeout_s else []
    wrapper = [
        "flock",
        LOCK,
        sys.executable,
        "-c",
        (
            "import subprocess,sys,time;t=time.perf_counter();r=subprocess.run(sys.argv[1:]).returncode;"
            "print(f'@@seconds {time.perf_counter()-t:.3f}',file=sys.stderr);sys.exit(r)"
        ),
        *limit,
        *cmd,
    ]
    with open(log, "a") as handle:
        proc = subprocess.run(wrapper, env=env, stdout=handle, stderr=subprocess.STDOUT, check=False)
    return proc.returncode, float(log.read_text().rsplit("@@seconds ", 1)[1].split()[0])


def lm_eval_cmd(
    python: str, task: str, model_args: list[str], limit: int, tasks_dir: Path, target: Path, extra: list[str]
) -> list[str]:
    return [
        python,
        "-m",
        "lm_eval",
        "run",
        *model_args,
        "--tasks",
        f"{task}_local",
        "--include_path",
        str(tasks_dir),
        "--limit",
        str(limit),
        "--output_path",
        str(target / "out"),
        "--log_samples",
        *extra,
    ]


def samples_of(target: Path, task: str) -> list[dict] | None:
    found = glob.glob(str(target / "out" / "**" / f"samples_{task}_local_*.jsonl"), recursive=True)
    if not found:
        return None
    return [json.loads(line) for line in Path(max(found, key=os.path.getmtime)).read_text().splitlines()]


def backend_args(backend: str, model: str, batch_size: int, cache: Path) -> tuple[list[str], list[str]]:
    """lm-eval's --model/--model_args and the run's other flags for `backend`: hf (CPU, float32, its request
    cache so a chunk resumes) or vllm (the same float32 weights, eager, vLLM's own batching)."""
    if backend == "vllm":
        args = f"pretrained={model},dtype=float32,enforce_eager=True,max_model_len=4096,seed=1234"
        return ["--model", "vllm", "--model_args", args], ["--batch_size", "auto"]
    extra = ["--batch_size", str(batch_size), "--device", "cpu", "--use_cache", str(cache)]
    return ["--model", "hf", "--model_args", f"pretrained={model},dtype=float32"], extra


def run_lm_eval(
    python: str,
    task: str,
    model: str,
    limit: int,
    tasks_dir: Path,
    out: Path,
    env: dict[str, str],
    batch_size: int,
    max_chunks: int,
    backend: str = "hf",
) -> tuple[dict[int, dict], dict[int, dict], float, int]:
    """Stock lm-eval: its prompts (a `dummy`-model pass, no generation), then its `backend` run (hf: in
    resumable locked chunks). Returns (doc -> prompt/request, doc -> completion/metrics, seconds, chunks);
    when the hf run did not finish in `max_chunks`, the completions are the documents it finished."""
    prompts_dir = out / f"lm_eval_{task}_prompts"
    if samples_of(prompts_dir, task) is None:
        cmd = lm_eval_cmd(python, task, ["--model", "dummy"], limit, tasks_dir, prompts_dir, [])
        subprocess.run(cmd, env=env, check=True, capture_output=True)
    requests = {}
    for row in samples_of(prompts_dir, task):
        arguments = row["arguments"]
        arguments = ast.literal_eval(arguments) if isinstance(arguments, str) else arguments
        requests[int(row["doc_id"])] = {
            "prompt": arguments["gen_args_0"]["arg_0"],
            "gen_kwargs": arguments["gen_args_0"]["arg_1"],
            "target": row["target"],
            "doc": row["doc"],
        }
    suffix = "" if backend == "hf" else f"_{backend}"  # hf keeps the folder names of earlier runs
    target, log = out / f"lm_eval_{task}{suffix}", out / f"lm_eval_{task}{suffix}.log"
    tries = 0
    while samples_of(target, task) is None and tries < (max_chunks if backend == "hf" else 1):
        model_args, extra = backend_args(backend, model, batch_size, target / "cache")
        cmd = lm_eval_cmd(python, task, model_args, limit, tasks_dir, target, extra)
        target.mkdir(parents=True, exist_ok=True)
        code, _ = locked(cmd, env, log, CHUNK_S if backend == "hf" else None)
        tries += 1
        if code not in (0, 124, 130):
            sys.exit(f"lm-eval ({backend}) failed ({code}); see {log}")
    # every chunk this folder ever ran (a re-run of the benchmark reuses them), model loads included
    spent = [float(part.split()[0]) for part in log.read_text().split("@@seconds ")[1:]] if log.exists() else []
    rows = samples_of(target, task)
    if rows is not None:
        return requests, per_doc(rows), sum(spent), len(spent)
    if backend != "hf":
        sys.exit(f"lm-eval ({backend}) left no samples; see {log}")
    with tempfile.NamedTemporaryFile("w", suffix=".json") as handle:
        json.dump([requests[d] for d in sorted(requests)], handle)
        handle.flush()
        done = subprocess.run(
            [python, "-c", CACHED, str(target / "cache_rank0.db"), str(tasks_dir / f"{task}_local.yaml"), handle.name],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
    cached = json.loads(done.stdout.strip().splitlines()[-1])
    theirs = {
        d: {"completion": c["completion"], "metrics": {k: tuple(v) for k, v in c["metrics"].items()}}
        for d, c in zip(sorted(requests), cached, strict=True)
        if c is not None
    }
    return requests, theirs, sum(spent), len(spent)


def per_doc(rows: list[dict]) -> dict[int, dict]:
    """lm-eval's rows (one per doc and filter) as doc -> completion and per filter/metric answer + verdict."""
    docs: dict[int, dict] = {}
    for row in rows:
        doc = docs.setdefault(int(row["doc_id"]), {"completion": row["resps"][0][0], "metrics": {}})
        if row["filter"] != "none":  # gsm8k: strict-match / flexible-extract
            doc["metrics"][row["filter"]] = (row["filtered_resps"][0], bool(row["exact_match"]))
        else:  # minerva: math_verify over the whole completion
            doc["metrics"]["math_verify"] = (None, bool(row["math_verify"]))
    return docs


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
