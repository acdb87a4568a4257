"""lm-evaluation-harness vs `rlvr eval` on the same N GSM8K problems with the same 5-shot prompt.

    python benchmarks/eval_vs_lm_eval.py [--limit 50] [--rlvr-runs vllm:float32,vllm:bfloat16,hf:float32]

lm-eval (`hf` backend, greedy) reads the local GSM8K jsonl through a task yaml written to a temp
dir (`dataset_path: json` + `data_files`) that copies lm-eval's own gsm8k task except for the
few-shot sampler: `first_n`, so every problem gets the first 5 train examples — exactly rlvr's
`--style fewshot` prompt. Both tools run as separate processes, timed end to end (model load
included), under /tmp/rlvr-heavy.lock, with the same thread count. Prints one table.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's rlvr, installed or not
TASK = "gsm8k_rlvr_local"
TASK_YAML = """\
task: {task}
dataset_path: json
dataset_kwargs:
  data_files:
    train: {data}/gsm8k/train.jsonl
    test: {data}/gsm8k/test.jsonl
output_type: generate_until
training_split: train
fewshot_split: train
test_split: test
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_target: "{{{{answer}}}}"
fewshot_config:
  sampler: first_n
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
    ignore_case: true
    ignore_punctuation: false
    regexes_to_ignore: [",", "\\\\$", "(?s).*#### ", "\\\\.$"]
generation_kwargs:
  until: ["Question:", "</s>", "<|im_end|>"]
  do_sample: false
  temperature: 0.0
  max_gen_toks: {max_new_tokens}
repeats: 1
num_fewshot: 5
filter_list:
  - name: "strict-match"
    filter:
      - function: "regex"
        regex_pattern: "#### (\\\\-?[0-9\\\\.\\\\,]+)"
      - function: "take_first"
  - name: "flexible-extract"
    filter:
      - function: "regex"
        group_select: -1
        regex_pattern: "(-?[$0-9.,]{{2,}})|(-?[0-9]+)"
      - function: "take_first"
metadata:
  version: 3.0
"""


def timed(cmd: list[str], env: dict[str, str], log: Path) -> float:
    """Run under the heavy lock; seconds of the command itself (lock wait excluded)."""
    wrapper = ["flock", "/tmp/rlvr-heavy.lock", sys.executable, "-c",
               "import subprocess,sys,time;t=time.perf_counter();r=subprocess.run(sys.argv[1:]).returncode;"
               "print(f'@@seconds {time.perf_counter()-t:.3f}',file=sys.stderr);sys.exit(r)", *cmd]
    with open(log, "w") as handle:
        proc = subprocess.run(wrapper, env=env, stdout=handle, stderr=subprocess.STDOUT)
    text = log.read_text()
    if proc.returncode != 0:
        sys.exit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{text[-3000:]}")
    return float(text.rsplit("@@seconds ", 1)[1].split()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="HuggingFaceTB/SmolLM2-135M-Instruct")
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32, help="lm-eval hf batch size")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rlvr-runs", default="vllm:float32,vllm:auto,hf:float32",
                        help="rlvr eval runs as ENGINE:DTYPE (lm-eval runs float32; auto = the engine's default)")
    parser.add_argument("--out", default="/tmp/rlvr-bench/eval_vs_lm_eval")
    args = parser.parse_args()

    from rlvr.models import resolve_model

    data = Path(os.environ.get("RLVR_DATA_DIR") or ROOT.parent / "shared" / "data")
    model = str(resolve_model(args.model))  # lm-eval gets the same local folder rlvr resolves
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    threads = str(args.threads)
    env = {**os.environ, "RLVR_DATA_DIR": str(data), "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
           "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    rows = []

    with tempfile.TemporaryDirectory() as tasks:
        Path(tasks, f"{TASK}.yaml").write_text(TASK_YAML.format(task=TASK, data=data, max_new_tokens=args.max_new_tokens))
        lm_out = out / "lm_eval"
        cmd = [sys.executable, "-m", "lm_eval", "run", "--model", "hf",
               "--model_args", f"pretrained={model},dtype=float32", "--tasks", TASK, "--include_path", tasks,
               "--limit", str(args.limit), "--batch_size", str(args.batch_size), "--device", "cpu",
               "--output_path", str(lm_out), "--log_samples"]
        seconds = timed(cmd, env, out / "lm_eval.log")
    result_file = max(glob.glob(str(lm_out / "**" / "results_*.json"), recursive=True), key=os.path.getmtime)
    metrics = json.loads(Path(result_file).read_text())["results"][TASK]
    rows.append(("lm-eval (hf backend), strict-match", metrics["exact_match,strict-match"], seconds))
    rows.append(("lm-eval (hf backend), flexible-extract", metrics["exact_match,flexible-extract"], seconds))
    lm_samples = max(glob.glob(str(lm_out / "**" / f"samples_{TASK}_*.jsonl"), recursive=True), key=os.path.getmtime)
    lm_rows = [json.loads(line) for line in Path(lm_samples).read_text().splitlines()]  # one row per doc and filter
    lm_text = {int(r["doc_id"]): r["resps"][0][0] for r in lm_rows}
    lm_prompt = {int(r["doc_id"]): _lm_prompt(r) for r in lm_rows}
    lm_right = {int(r["doc_id"]): r["exact_match"] > 0 for r in lm_rows if r["filter"] == "strict-match"}

    agreement = {}
    for run in args.rlvr_runs.split(","):
        engine, _, dtype = run.partition(":")
        dtype = dtype or "auto"
        target = out / f"rlvr_{engine}_{dtype}"
        if target.exists():  # a fresh run every time: the timing must include generation
            subprocess.run(["rm", "-rf", str(target)], check=True)
        cmd = [sys.executable, "-m", "rlvr", "eval", "--model", args.model, "--benchmark", "gsm8k", "--limit",
               str(args.limit), "--style", "fewshot", "--engine", engine, "--max-new-tokens", str(args.max_new_tokens),
               "--dtype", dtype, "--max-model-len", "2048", "--output", str(target)]
        seconds = timed(cmd, env, out / f"rlvr_{engine}_{dtype}.log")
        summary = json.loads((target / "gsm8k" / "summary.json").read_text())
        rows.append((f"rlvr eval --style fewshot --engine {engine} --dtype {dtype}", summary["accuracy"], seconds))
        mine = [json.loads(line) for line in (target / "gsm8k" / "samples.jsonl").read_text().splitlines()]
        doc = [int(r["id"].rsplit("/", 1)[1]) for r in mine]
        agreement[f"{engine} --dtype {dtype}"] = {
            "identical prompts": sum(r["prompt"] == lm_prompt[d] for r, d in zip(mine, doc)) / len(mine),
            "identical completions": sum(r["completion"].strip() == lm_text[d].strip() for r, d in zip(mine, doc)) / len(mine),
            "same verdict as strict-match": sum((r["status"] == "correct") == lm_right[d] for r, d in zip(mine, doc)) / len(mine),
        }

    lm_seconds = rows[0][2]
    print(f"\nGSM8K test, first {args.limit} problems, 5-shot (first 5 train examples), greedy, max {args.max_new_tokens} "
          f"new tokens, model {args.model}; {os.cpu_count()}-core CPU, {threads} threads\n")
    print("| tool | accuracy | wall s (incl. model load) | speed-up vs lm-eval |")
    print("| --- | ---: | ---: | ---: |")
    for name, accuracy, seconds in rows:
        print(f"| {name} | {accuracy:.1%} | {seconds:.1f} | {lm_seconds / seconds:.2f}x |")
    print()
    for engine, shares in agreement.items():
        print(f"rlvr {engine} vs lm-eval, per problem: " + ", ".join(f"{k} {v:.0%}" for k, v in shares.items()))
    strict, flexible = rows[0][1], rows[1][1]
    for name, accuracy, seconds in rows[2:]:
        gap = max(abs(accuracy - strict), abs(accuracy - flexible)) * 100
        print(f"{name}: accuracy gap to lm-eval (worse of strict/flexible) {gap:.1f} points (target <= 1: "
              f"{'met' if gap <= 1 else 'MISSED'}); speed-up {lm_seconds / seconds:.2f}x (target >= 3: "
              f"{'met' if lm_seconds / seconds >= 3 else 'MISSED'})")


def _lm_prompt(row: dict) -> str:
    """The context lm-eval generated from (its samples log stores the request arguments)."""
    arguments = row["arguments"]
    if isinstance(arguments, str):
        import ast

        arguments = ast.literal_eval(arguments)
    return arguments["gen_args_0"]["arg_0"]


if __name__ == "__main__":
    main()
