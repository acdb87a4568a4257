"""Verdicts/s and accuracy of rlvr's `math` verifier vs raw math-verify (parse + verify, one pair at
a time on the main thread, as users call it): in-process and whole-process (`rlvr verify` as a fresh
subprocess, timed from outside, against a fresh process running the math-verify loop), on 4,000
pairs built from the shared GSM8K / MATH-500 / MATH data; then accuracy and false-positive /
false-negative rates per failure class on the shipped labelled set
`benchmarks/data/verifier_pairs.jsonl` (hand-labelled, one `class` per row), for both.

Each contender runs in its own fresh Python process so that no one inherits another's warm
parse caches; in the in-process runs each is warmed up on a few unrelated strings first.

    flock /tmp/rlvr-heavy.lock python benchmarks/verifier_throughput.py --workers 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from rlvr.verifiers.math.boxes import find_boxes
from rlvr.verifiers.math.gold import gold_answer
from rlvr.verifiers.math.grade import WARMUP_ANSWERS, to_number

# Both contenders warm up on the same pairs (none from the benchmark), chosen to reach the symbolic
# path: imports, and the antlr parser's decision cache, which otherwise makes a process's first
# LaTeX parses cost 50-400 ms each.
_WARM = [
    ("(-\\infty, 1) \\cup (2, 3]", "(2,3] \\cup (-\\infty,1)"),
    ("\\cos 20^\\circ", "\\cos(20)"),
    ("2e", "e+e"),
    ("\\log_2 8", "3"),
    ("x = 2y+1", "x-2y = 1"),
    ("\\{x, y\\}", "\\{y, x\\}"),
    ("\\sin^2 x + 1", "1 + \\sin^2 x"),
    ("\\sqrt{e}", "e^{1/2}"),
    ("\\frac{\\pi}{e}", "\\pi/e"),
    ("[2, e)", "[2, e^1)"),
    ("3 \\cdot 2^{x}", "3 \\times 2^x"),
    ("\\frac{\\sqrt{2}}{2}", "\\frac{1}{\\sqrt{2}}"),
    ("12", "12"),
]
WARMUP = [(f"The answer is $\\boxed{{{answer}}}$.", gold) for gold, answer in _WARM]


@dataclass(frozen=True)
class Pair:
    completion: str
    gold_field: (
        str  # what rlvr is given: the data set's own gold field (GSM8K solution, MATH-500 answer, MATH solution)
    )
    gold: str  # the bare final answer, given to raw math-verify as "$gold$"
    label: bool  # the truth by construction: should this earn reward 1?
    kind: str
    source: str


# -- equivalent rewrites and near misses of a gold answer (each returns None when it does not apply)


def _int(g: str) -> int | None:
    value = to_number(g)
    return int(value) if value is not None and value.denominator == 1 and "." not in g else None


def _frac_parts(g: str) -> tuple[str, int, int] | None:
    m = re.fullmatch(r"(-?)\\[dt]?frac\s*\{?(\d+)\}?\s*\{?(\d+)\}?", g.replace(" ", ""))
    return (m[1], int(m[2]), int(m[3])) if m and int(m[3]) else None


def _terminating(num: int, den: int) -> str | None:
    d = den
    for p in (2, 5):
        while d % p == 0:
            d //= p
    return None if d != 1 else repr(num / den) if len(repr(num / den)) < 10 else None


REWRITES = {
    "thousands": lambda g: f"{_int(g):,}" if _int(g) is not None and abs(_int(g)) >= 1000 and "," not in g else None,
    "no_thousands": lambda g: re.sub(r",(\\!)? ?", "", g) if re.fullmatch(r"-?\d{1,3}(,(\\!)? ?\d{3})+", g) else None,
    "decimal_zero": lambda g: f"{_int(g)}.0" if _int(g) is not None else None,
    "dollars": lambda g: f"\\${g}" if _int(g) is not None else None,
    "unit_word": lambda g: f"{g} \\text{{ units}}" if _int(g) is not None else None,
    "slash": lambda g: f"{p[0]}{p[1]}/{p[2]}" if (p := _frac_parts(g)) else None,
    "dfrac": lambda g: g.replace("\\frac", "\\dfrac") if "\\frac" in g and "\\dfrac" not in g else None,
    "frac_decimal": lambda g: (p[0] + d) if (p := _frac_parts(g)) and (d := _terminating(p[1], p[2])) else None,
    "unreduced": lambda g: f"{p[0]}\\frac{{{2 * p[1]}}}{{{2 * p[2]}}}" if (p := _frac_parts(g)) else None,
    "no_degrees": lambda g: re.sub(r"\^\s*\{?\\circ\}?", "", g) if "\\circ" in g else None,
    "choice_letter": lambda g: m[1] if (m := re.fullmatch(r"\\text\{\((\w)\)\}", g)) else None,
    "left_right": lambda g: (
        "\\left" + g[0] + " " + g[1:-1].replace(",", ", ") + " \\right" + g[-1]
        if g[:1] in "([" and g[-1:] in ")]" and "\\left" not in g
        else None
    ),
    "set_reordered": lambda g: (
        "\\{" + ", ".join(reversed(_top_level_items(g[2:-2]))) + "\\}"
        if g.startswith("\\{") and g.endswith("\\}")
        else None
    ),
    "text_unwrapped": lambda g: m[1] if (m := re.fullmatch(r"\\text\{([A-Za-z ]+)\}", g)) else None,
}


def _top_level_items(s: str) -> list[str]:
    items, depth, start = [], 0, 0
    for i, ch in enumerate(s):
        depth += (ch in "({[" and 1) or (ch in ")}]" and -1) or 0
        if ch == "," and depth == 0:
            items.append(s[start:i].strip())
            start = i + 1
    return [*items, s[start:].strip()]


def _bump_digit(g: str) -> str | None:
    digits = [m.start() for m in re.finditer(r"\d", g)]
    if not digits:
        return None
    i = digits[0]  # the first digit: the last is often a unit's exponent (cm^2)
    return g[:i] + str((int(g[i]) + 1) % 10) + g[i + 1 :]


def _swap_tuple(g: str) -> str | None:
    if not (g[:1] in "([" and g[-1:] in ")]"):
        return None
    inner = g[1:-1].replace("\\left", "").replace("\\right", "")
    items = _top_level_items(inner)
    return (
        f"{g[0]}{items[1]}, {items[0]}{', ' if items[2:] else ''}{', '.join(items[2:])}{g[-1]}"
        if len(items) >= 2 and items[0] != items[1]
        else None
    )


NEAR_MISSES = {
    "plus_one": lambda g: str(n + 1) if (n := _int(g)) is not None else None,
    "times_ten": lambda g: str(10 * n) if (n := _int(g)) else None,
    "negated": lambda g: str(-n) if (n := _int(g)) else None,
    "reciprocal": lambda g: (
        f"{p[0]}\\frac{{{p[2]}}}{{{p[1]}}}" if (p := _frac_parts(g)) and p[1] != p[2] and p[1] else None
    ),
    "swapped": _swap_tuple,
    "set_as_tuple": lambda g: "(" + g[2:-2] + ")" if g.startswith("\\{") and g.endswith("\\}") and "," in g else None,
    # not at an infinite end: [-\infty, 0] and (-\infty, 0] are the same set of reals
    "bracket_flipped": lambda g: (
        ("(" if g[0] == "[" else "[") + g[1:]
        if g[:1] in "([" and g[-1:] in ")]" and "," in g and not re.match(r"[-+]?\\infty", g[1:].lstrip())
        else None
    ),
    "other_choice": lambda g: (
        f"\\text{{({'ABCDE'[('ABCDE'.index(m[1]) + 1) % 5]})}}"
        if (m := re.fullmatch(r"\\text\{\(([A-E])\)\}", g))
        else None
    ),
    "digit_changed": _bump_digit,
}


def _pick(table: dict, gold: str, rng: random.Random) -> tuple[str, str] | None:
    options = [(name, out) for name, f in table.items() if (out := f(gold)) and out != gold]
    return rng.choice(options) if options else None


# -- completions -------------------------------------------------------------------------------------

ENDINGS = {
    "boxed": lambda r, a: f"{r}\nTherefore, the answer is $\\boxed{{{a}}}$.",
    "answer_is": lambda r, a: f"{r}\nThe final answer is ${a}$.",
    "minerva": lambda r, a: f"{r}\nFinal Answer: The final answer is ${a}$. I hope it is correct.",
}


def _completion(reasoning: str, gold: str, label_kind: str, rng: random.Random, gsm8k: bool) -> tuple[str, str] | None:
    """(completion, kind) for one wanted kind, or None when it does not apply to this gold."""
    endings = dict(ENDINGS, hash=lambda r, a: f"{r}\n#### {a}") if gsm8k else ENDINGS
    end = endings[rng.choice(sorted(endings))]
    if label_kind == "same":
        return end(reasoning, gold), "correct: same form"
    if label_kind == "rewrite":
        found = _pick(REWRITES, gold, rng)
        return (end(reasoning, found[1]), f"correct: {found[0]}") if found else None
    miss = _pick(NEAR_MISSES, gold, rng)
    if label_kind == "correction":
        return (
            (
                (
                    f"{reasoning}\nSo $\\boxed{{{miss[1]}}}$.\n\n"
                    "Wait, I made a slip in the last step. Redoing it carefully, "
                    f"the answer is $\\boxed{{{gold}}}$."
                ),
                "correct: corrected later",
            )
            if miss
            else None
        )
    if label_kind == "near_miss":
        return (end(reasoning, miss[1]), f"wrong: {miss[0]}") if miss else None
    if label_kind == "hedged":
        options = [gold, miss[1]] if miss else None
        if not options:
            return None
        rng.shuffle(options)
        return f"{reasoning}\nSo the answer is $\\boxed{{{options[0]}}}$ or $\\boxed{{{options[1]}}}$.", "wrong: hedged"
    if label_kind == "truncated":
        return (
            f"{reasoning}\nTherefore, the answer is $\\boxed{{{gold[: max(1, len(gold) // 2)]}",
            "wrong: truncated in the box",
        )
    raise ValueError(label_kind)


POSITIVE = (["same"] * 3) + (["rewrite"] * 5) + (["correction"] * 2)
NEGATIVE = (["near_miss"] * 5) + (["hedged"] * 3) + (["truncated"] * 2)


def _examples(data_dir: Path, rng: random.Random, n_gsm8k: int, n_math500: int, n_math: int):
    """(reasoning, gold field, bare gold, is_gsm8k, source) from the shared data."""
    gsm = [json.loads(line) for line in (data_dir / "gsm8k" / "test.jsonl").open()]
    for row in rng.sample(gsm, n_gsm8k):
        reasoning = re.sub(r"<<[^>]*>>", "", row["answer"].rsplit("####", 1)[0]).strip()
        yield reasoning, row["answer"], gold_answer(row["answer"]), True, "gsm8k"
    m500 = [json.loads(line) for line in (data_dir / "math500" / "test.jsonl").open()]
    problems_500 = {r["problem"] for r in m500}
    for row in rng.sample(m500, n_math500):
        boxes = find_boxes(row["solution"])
        yield row["solution"][: boxes[-1].start].rstrip(" $\\[("), row["answer"], row["answer"], False, "math500"
    math = [json.loads(line) for line in (data_dir / "math" / "test.jsonl").open()]
    single = [r for r in math if r["problem"] not in problems_500 and len(find_boxes(r["solution"])) == 1]
    for row in rng.sample(single, n_math):
        box = find_boxes(row["solution"])[0]
        yield row["solution"][: box.start].rstrip(" $\\[("), row["solution"], box.content, False, "math"


def build_pairs(data_dir: Path, seed: int, n_gsm8k: int, n_math500: int, n_math: int) -> list[Pair]:
    rng = random.Random(seed)
    pairs = []
    for reasoning, gold_field, gold, gsm8k, source in _examples(data_dir, rng, n_gsm8k, n_math500, n_math):
        for pool, label in ((POSITIVE, True), (NEGATIVE, False)):
            made = None
            for kind in rng.sample(pool, len(pool)):  # first kind that applies to this gold
                if made := _completion(reasoning, gold, kind, rng, gsm8k):
                    break
            if made:
                pairs.append(Pair(made[0], gold_field, gold, label, made[1], source))
    return pairs


# -- contenders (each in its own process) ------------------------------------------------------------


def run_raw(pairs: list[Pair]) -> dict:
    import logging

    from math_verify import parse, verify

    logging.disable(logging.WARNING)  # math-verify logs every parse failure/timeout warning
    for answer in WARMUP_ANSWERS:  # what rlvr's MathVerifier.warmup() parses
        parse(f"${answer}$")
    for completion, gold in WARMUP:
        verify(parse(f"${gold}$"), parse(completion))
    verdicts, item_seconds = [], []
    start = time.perf_counter()
    for p in pairs:
        t = time.perf_counter()
        verdicts.append(bool(verify(parse(f"${p.gold}$"), parse(p.completion))))
        item_seconds.append(time.perf_counter() - t)
    return {"seconds": time.perf_counter() - start, "verdicts": verdicts, "item_seconds": item_seconds}


def _examples_of(pairs: list[Pair]):
    from rlvr.types import Example

    return [Example(str(i), "", p.gold_field) for i, p in enumerate(pairs)]


def run_inprocess(pairs: list[Pair]) -> dict:
    from rlvr.types import Example
    from rlvr.verifiers.math.verifier import MathVerifier

    verifier = MathVerifier()
    verifier.warmup()
    verifier.score_batch([c for c, _ in WARMUP], [Example("w", "", g) for _, g in WARMUP])
    examples = _examples_of(pairs)
    scores, item_seconds = [], []
    start = time.perf_counter()
    for p, example in zip(pairs, examples, strict=True):
        t = time.perf_counter()
        scores.append(verifier.score(p.completion, example))
        item_seconds.append(time.perf_counter() - t)
    return {**_summary(time.perf_counter() - start, scores), "item_seconds": item_seconds}


def run_runner(pairs: list[Pair], workers: int) -> dict:
    from rlvr.types import Example
    from rlvr.verifiers.math.verifier import MathVerifier
    from rlvr.verifiers.runner import Runner

    examples = _examples_of(pairs)
    cold = time.perf_counter()
    with Runner(MathVerifier(), workers=workers, timeout=10.0) as runner:
        warm = [c for c, _ in WARMUP] * workers * 4
        runner.score(warm, [Example("w", "", g) for _, g in WARMUP] * workers * 4)
        startup = time.perf_counter() - cold
        start = time.perf_counter()
        scores = runner.score([p.completion for p in pairs], examples)
        seconds = time.perf_counter() - start
    return {**_summary(seconds, scores), "startup_s": startup}


def _summary(seconds: float, scores) -> dict:
    return {
        "seconds": seconds,
        "verdicts": [s.reward > 0.5 for s in scores],
        "statuses": Counter(s.status.value for s in scores),
        "paths": Counter(s.details.get("path", s.details.get("method", "?")) for s in scores),
    }


# -- driver ---------------------------------------------------------------------------------------------


def _child(args) -> None:
    if args.mode == "labelled":
        return json.dump(run_labelled(), sys.stdout)
    pairs = build_pairs(args.data_dir, args.seed, args.gsm8k, args.math500, args.math)
    if args.mode == "raw":
        out = run_raw(pairs)
    elif args.mode == "inprocess":
        out = run_inprocess(pairs)
    else:
        out = run_runner(pairs, args.workers)
    json.dump(out, sys.stdout)
    return None


LABELLED = Path(__file__).resolve().parent / "data" / "verifier_pairs.jsonl"
# raw math-verify as a user's script would run it: its default (signal) timeouts, one pair at a time
RAW_LOOP = """
import json, logging, sys
logging.disable(logging.WARNING)
from math_verify import parse, verify
rows = [json.loads(line) for line in open(sys.argv[1])]
verdicts = [bool(verify(parse("$" + r["gold"] + "$"), parse(r["completion"]))) for r in rows]
json.dump(verdicts, open(sys.argv[2], "w"))
"""


def _timed(command: list[str], env: dict) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{command[:4]} failed:\n{done.stderr[-4000:]}")
    return seconds


def whole_process(pairs: list[Pair], workers: int, tmp: Path) -> dict:
    """Wall-clock seconds of fresh processes, start to exit, each reading the same JSONL file."""
    rows = tmp / "rows.jsonl"
    rows.write_text(
        "".join(json.dumps({"completion": p.completion, "answer": p.gold_field, "gold": p.gold}) + "\n" for p in pairs)
    )
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    out: dict = {}
    raw_out = tmp / "raw.json"
    out["raw"] = {"seconds": _timed([sys.executable, "-c", RAW_LOOP, str(rows), str(raw_out)], env)}
    out["raw"]["verdicts"] = json.loads(raw_out.read_text())
    for name, n in ((f"rlvr verify --workers {workers}", workers), ("rlvr verify --workers 0", 0)):
        scored = tmp / f"scored{n}.jsonl"
        seconds = [
            _timed(
                [
                    sys.executable,
                    "-m",
                    "rlvr.cli",
                    "verify",
                    "-v",
                    "math",
                    "-i",
                    str(rows),
                    "-o",
                    str(scored),
                    "--workers",
                    str(n),
                ],
                env,
            )
            for _ in range(2)
        ]
        verdicts = [json.loads(line)["reward"] > 0.5 for line in scored.read_text().splitlines()]
        out[name] = {"seconds": min(seconds), "runs": seconds, "verdicts": verdicts}
    return out


def run_labelled() -> dict:
    """rlvr `math` (in-process) and raw math-verify on every labelled row. Raw math-verify runs the
    pathological rows one per subprocess with a 20 s limit (a power tower can hang it for minutes)."""
    import logging

    from math_verify import parse, verify

    from rlvr.types import Example
    from rlvr.verifiers.math.verifier import MathVerifier

    logging.disable(logging.WARNING)
    rows = [json.loads(line) for line in LABELLED.open()]
    verifier = MathVerifier()
    ours = [
        verifier.score(r["completion"], Example(str(i), r.get("prompt", ""), r["answer"])).reward > 0.5
        for i, r in enumerate(rows)
    ]
    raw: list = []
    for r in rows:
        if r["class"] != "pathological":
            raw.append(bool(verify(parse(f"${r['answer']}$"), parse(r["completion"]))))
            continue
        code = (
            "from math_verify import parse, verify; "
            f"print(bool(verify(parse({'$' + r['answer'] + '$'!r}), parse({r['completion']!r}))))"
        )
        try:
            done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=20, check=False)
            raw.append(
                done.stdout.strip().splitlines()[-1] == "True"
                if done.returncode == 0 and done.stdout.strip()
                else "error"
            )
        except subprocess.TimeoutExpired:
            raw.append("hung")
    return {"ours": ours, "raw": raw}


def _class_rates(rows: list[dict], verdicts: list) -> dict[str, dict]:
    """Per class: rows, accuracy, false positives / negatives (and the rates over the negatives /
    positives), and rows with no verdict (raw math-verify hung or crashed: counted as not rewarded)."""
    out: dict[str, dict] = {}
    for cls in [*sorted({r["class"] for r in rows}), "all"]:
        idx = [i for i, r in enumerate(rows) if cls in ("all", r["class"])]
        given = [verdicts[i] is True for i in idx]
        labels = [rows[i]["label"] for i in idx]
        fp = sum(g and not label for g, label in zip(given, labels, strict=True))
        fn = sum(label and not g for g, label in zip(given, labels, strict=True))
        neg, pos = labels.count(False), labels.count(True)
        out[cls] = {
            "rows": len(idx),
            "accuracy": sum(g == label for g, label in zip(given, labels, strict=True)) / len(idx),
            "fp": fp,
            "fn": fn,
            "fp_rate": fp / neg if neg else 0.0,
            "fn_rate": fn / pos if pos else 0.0,
            "no_verdict": sum(not isinstance(verdicts[i], bool) for i in idx),
        }
    return out


def _machine() -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout.splitlines()
            if line.startswith("Model name")
        ),
        platform.processor(),
    )
    flags = (
        Path("/proc/cpuinfo").read_text().split("flags", 1)[-1].split("\n", 1)[0]
        if Path("/proc/cpuinfo").exists()
        else ""
    )
    wanted = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile") if f in flags.split()]
    torch_cap = (
        subprocess.run(
            [sys.executable, "-c", "import torch; print(torch.backends.cpu.get_cpu_capability())"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        or "torch not importable"
    )
    return (
        f"{model}; {os.cpu_count()} CPUs; flags {' '.join(wanted)}; torch cpu capability {torch_cap}; "
        f"Python {platform.python_version()}"
    )


def _spawn(args, mode: str) -> dict:
    command = [
        sys.executable,
        __file__,
        "--child",
        mode,
        "--seed",
        str(args.seed),
        "--workers",
        str(args.workers),
        "--gsm8k",
        str(args.gsm8k),
        "--math500",
        str(args.math500),
        "--math",
        str(args.math),
        "--data-dir",
        str(args.data_dir),
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode:
        raise SystemExit(f"{mode} run failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("RLVR_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data")),
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="runner worker processes")
    parser.add_argument("--gsm8k", type=int, default=800, help="GSM8K test examples (2 pairs each)")
    parser.add_argument("--math500", type=int, default=500, help="MATH-500 examples (2 pairs each)")
    parser.add_argument("--math", type=int, default=700, help="other MATH test examples (2 pairs each)")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    parser.add_argument(
        "--child", choices=["raw", "inprocess", "runner", "labelled"], dest="mode", help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.mode:
        return _child(args)
    from rich.console import Console
    from rich.table import Table

    pairs = build_pairs(args.data_dir, args.seed, args.gsm8k, args.math500, args.math)
    labels = [p.label for p in pairs]
    results = {mode: _spawn(args, mode) for mode in ("raw", "inprocess", "runner")}
    raw = results["raw"]
    raw_rate = len(pairs) / raw["seconds"]

    def accuracy(verdicts):
        return sum(v == label for v, label in zip(verdicts, labels, strict=True)) / len(labels)

    def agreement(verdicts):
        return sum(v == r for v, r in zip(verdicts, raw["verdicts"], strict=True)) / len(labels)

    console = Console(width=140)
    console.print(
        f"{len(pairs)} labelled pairs ({sum(labels)} should earn 1), sources {dict(Counter(p.source for p in pairs))}; "
        f"{os.cpu_count()} CPUs, {platform.python_version()}"
    )
    table = Table(title="math verifier throughput and accuracy (same run)")
    for col in ("contender", "seconds", "verdicts/s", "× raw math-verify", "accuracy", "agreement w/ raw"):
        table.add_column(col, justify="left" if col == "contender" else "right")
    names = {
        "raw": "raw math-verify parse+verify (main thread)",
        "inprocess": "rlvr math, in-process (1 core)",
        "runner": f"rlvr math, Runner {args.workers} workers",
    }
    summary = {}
    for mode, r in results.items():
        rate = len(pairs) / r["seconds"]
        summary[mode] = {
            "seconds": r["seconds"],
            "verdicts_per_s": rate,
            "ratio": rate / raw_rate,
            "accuracy": accuracy(r["verdicts"]),
            "agreement": agreement(r["verdicts"]),
        }
        table.add_row(
            names[mode],
            f"{r['seconds']:.2f}",
            f"{rate:,.0f}",
            f"{rate / raw_rate:.1f}×",
            f"{accuracy(r['verdicts']):.2%}",
            f"{agreement(r['verdicts']):.2%}",
        )
    console.print(table)
    console.print(
        f"runner start-up (spawn + imports + warm-up, not timed above): {results['runner']['startup_s']:.2f} s"
    )

    kinds = Table(title="accuracy by kind of pair")
    for col in ("kind", "pairs", "raw math-verify", "rlvr math"):
        kinds.add_column(col, justify="left" if col == "kind" else "right")
    by_kind: dict[str, list[int]] = {}
    for i, p in enumerate(pairs):
        by_kind.setdefault(p.kind, []).append(i)
    for kind, idx in sorted(by_kind.items()):

        def acc(verdicts, idx=idx):  # bound now: called only in this iteration, but said so
            return sum(verdicts[i] == labels[i] for i in idx) / len(idx)

        kinds.add_row(kind, str(len(idx)), f"{acc(raw['verdicts']):.1%}", f"{acc(results['runner']['verdicts']):.1%}")
    console.print(kinds)

    # where the time goes: plain-number golds are the fast path's home ground, the rest is not
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(pairs):
        shape = "number gold" if to_number(p.gold.replace("\\!", "").replace("\\$", "")) is not None else "other gold"
        groups.setdefault(f"{p.source}, {shape}", []).append(i)
    split = Table(title="single-core verdicts/s by subset (per-item timings of the two in-process runs)")
    for col in ("subset", "pairs", "raw math-verify", "rlvr math", "×"):
        split.add_column(col, justify="left" if col == "subset" else "right")
    for name, idx in sorted(groups.items()):
        raw_s = sum(raw["item_seconds"][i] for i in idx)
        ours_s = sum(results["inprocess"]["item_seconds"][i] for i in idx)
        split.add_row(
            name, str(len(idx)), f"{len(idx) / raw_s:,.0f}", f"{len(idx) / ours_s:,.0f}", f"{raw_s / ours_s:.1f}×"
        )
    console.print(split)
    console.print(f"rlvr statuses: {dict(results['runner']['statuses'])}")
    console.print(f"rlvr deciding path: {dict(results['runner']['paths'])}")
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        whole = whole_process(pairs, args.workers, Path(tmp))
    whole_table = Table(
        title="whole process: a fresh process per contender, wall clock from outside (same pairs, same run)"
    )
    for col in ("contender", "seconds", "pairs/s", "× raw math-verify", "accuracy"):
        whole_table.add_column(col, justify="left" if col == "contender" else "right")
    raw_whole = whole["raw"]["seconds"]
    for name, r in whole.items():
        label = (
            "raw math-verify loop (python -c)"
            if name == "raw"
            else f"{name} (best of {len(r['runs'])}: {', '.join(f'{x:.2f}' for x in r['runs'])})"
        )
        whole_table.add_row(
            label,
            f"{r['seconds']:.2f}",
            f"{len(pairs) / r['seconds']:,.0f}",
            f"{raw_whole / r['seconds']:.2f}×",
            f"{accuracy(r['verdicts']):.2%}",
        )
    console.print(whole_table)

    rows = [json.loads(line) for line in LABELLED.open()]
    labelled = _spawn(args, "labelled")
    rates = {who: _class_rates(rows, labelled[who]) for who in ("ours", "raw")}
    class_table = Table(
        title=f"labelled set {LABELLED.name}: {len(rows)} rows, "
        "FP = rewarded but should not be, FN = not rewarded but should be"
    )
    for col in ("class", "rows", "rlvr acc", "rlvr FP", "rlvr FN", "raw acc", "raw FP", "raw FN", "raw no verdict"):
        class_table.add_column(col, justify="left" if col == "class" else "right")
    for cls, ours in rates["ours"].items():
        theirs = rates["raw"][cls]
        class_table.add_row(
            cls,
            str(ours["rows"]),
            f"{ours['accuracy']:.1%}",
            f"{ours['fp']} ({ours['fp_rate']:.1%})",
            f"{ours['fn']} ({ours['fn_rate']:.1%})",
            f"{theirs['accuracy']:.1%}",
            f"{theirs['fp']} ({theirs['fp_rate']:.1%})",
            f"{theirs['fn']} ({theirs['fn_rate']:.1%})",
            str(theirs["no_verdict"]),
        )
    console.print(class_table)
    console.print(f"machine: {_machine()}; date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "pairs": len(pairs),
                    "summary": summary,
                    "whole_process": {k: {"seconds": v["seconds"]} for k, v in whole.items()},
                    "labelled": rates,
                    "statuses": results["runner"]["statuses"],
                    "paths": results["runner"]["paths"],
                },
                indent=1,
            )
        )
    return None


if __name__ == "__main__":
    main()
