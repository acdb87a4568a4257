"""Stock lm-evaluation-harness tasks vs `rlvr eval --style lm-eval`, sample by sample, on the same problems.

    pip install -c /tmp/rlvr-torch-constraint.txt -e '.[peers]'      # lm-eval (+ its math extra)
    python benchmarks/eval_vs_lm_eval.py [--limit 100] [--minerva-limit 50] [--rlvr-runs vllm:float32,hf:float32]

lm-eval runs its *stock* `gsm8k` and `minerva_math500` tasks: the task yamls written here only
`include:` lm-eval's own files and point `dataset_path` at the local jsonl copies (this machine has
no Hub); the sampler, seed, prompt, stops, length and metrics are lm-eval's. Its `hf` backend runs
on CPU in float32, greedy (batch size `--lm-eval-batch-size`, its default 1), in locked chunks of
< 9 minutes that resume through its own `--use_cache` (so the shared lock is never held long); its
time is the sum of the chunks, model loads included. rlvr runs `rlvr eval --style lm-eval` with the same model, float32,
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
) -> tuple[dict[int, dict], dict[int, dict], float, int]:
    """Stock lm-eval: its prompts (a `dummy`-model pass, no generation), then its `hf` run in resumable
    locked chunks. Returns (doc -> prompt/request, doc -> completion/metrics, seconds, chunks); when
    the hf run did not finish in `max_chunks`, the completions are the documents it finished."""
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
    target, log = out / f"lm_eval_{task}", out / f"lm_eval_{task}.log"
    tries = 0
    while samples_of(target, task) is None and tries < max_chunks:
        cmd = lm_eval_cmd(
            python,
            task,
            ["--model", "hf", "--model_args", f"pretrained={model},dtype=float32"],
            limit,
            tasks_dir,
            target,
            ["--batch_size", str(batch_size), "--device", "cpu", "--use_cache", str(target / "cache")],
        )
        target.mkdir(parents=True, exist_ok=True)
        code, _ = locked(cmd, env, log, CHUNK_S)
        tries += 1
        if code not in (0, 124, 130):
            sys.exit(f"lm-eval failed ({code}); see {log}")
    # every chunk this folder ever ran (a re-run of the benchmark reuses them), model loads included
    spent = [float(part.split()[0]) for part in log.read_text().split("@@seconds ")[1:]] if log.exists() else []
    rows = samples_of(target, task)
    if rows is not None:
        return requests, per_doc(rows), sum(spent), len(spent)
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
        requests, theirs, lm_seconds, chunks = run_lm_eval(
            args.python, task, model, limit, tasks_dir, out, env, args.lm_eval_batch_size, args.lm_eval_chunks
        )
        finished = len(theirs) == len(requests)
        print(
            f"## {task}, first {limit} problems, greedy, float32, 256 new tokens at most"
            + ("" if finished else f"; lm-eval's hf run did NOT finish: it generated {len(theirs)} of them")
            + "\n"
        )
        print(
            "| tool | "
            + " | ".join(f"{m} accuracy" for m in next(iter(theirs.values()))["metrics"])
            + " | rlvr math | wall s | speed-up |"
        )
        print("| --- |" + " ---: |" * (len(next(iter(theirs.values()))["metrics"]) + 3))
        names = list(next(iter(theirs.values()))["metrics"])
        print(
            f"| lm-eval {version} (hf backend, batch {args.lm_eval_batch_size}; {chunks} resumed chunk(s), "
            "model loads included) | "
            + " | ".join(f"{accuracy(d['metrics'][m][1] for d in theirs.values()):.1%}" for m in names)
            + f" | - | {lm_seconds:.1f} | 1.00x |"
        )
        agreement = {}
        for run, (mine, seconds) in runs.items():
            engine, _, dtype = run.partition(":")
            print(
                f"| rlvr eval --style lm-eval --engine {engine} --dtype {dtype} | "
                + " | ".join(
                    f"{accuracy(r['lm_eval'][m]['correct'] for i, r in enumerate(mine) if i in theirs):.1%}"
                    for m in names
                )
                + f" | {accuracy(r['status'] == 'correct' for i, r in enumerate(mine) if i in theirs):.1%}"
                + f" | {seconds:.1f}"
                + (f" | {lm_seconds / seconds:.2f}x |" if finished else " | (lm-eval unfinished) |")
            )
            agreement[run] = compare(mine, requests, theirs)
        print()
        print("accuracies over the documents lm-eval generated for; speed-up = lm-eval seconds / rlvr seconds\n")
        for run, counts in agreement.items():
            print(f"rlvr {run} vs lm-eval: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        print()


if __name__ == "__main__":
    main()
