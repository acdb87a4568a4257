"""Stock lm-evaluation-harness runs for benchmarks/eval_vs_lm_eval.py: its task yamls over the local data, its
`dummy` pass for the prompts, its `hf` (resumable locked chunks) or `vllm` run, and its rows per document."""

from __future__ import annotations

import ast
import glob
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

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
    with open(log, "a") as handle:  # its own process group: stopping the benchmark stops lm-eval's vLLM workers too
        proc = subprocess.Popen(wrapper, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            proc.wait()
        except BaseException:  # Ctrl-C, or SIGTERM (stop_on_sigterm): no orphaned VLLM::Worker left holding a core
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    return proc.returncode, float(log.read_text().rsplit("@@seconds ", 1)[1].split()[0])


def stop_on_sigterm() -> None:
    """SIGTERM ends the benchmark as Ctrl-C does (an exception, so `locked` takes its command's group down)."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


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
        # its KV cache as rlvr eval sizes it on CPU (1 GiB); vLLM-CPU would otherwise reserve 92% of the RAM
        args = f"pretrained={model},dtype=float32,enforce_eager=True,max_model_len=4096,seed=1234"
        args += f",kv_cache_memory_bytes={2**30}"
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
