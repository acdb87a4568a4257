"""Every rlvr objective that TRL 1.16 also has, against TRL's own loss code on identical inputs (float64):
one table of loss and gradient differences, ending with the line scripts read.

    python benchmarks/losses_vs_trl.py

Each objective family is one entry of PROVIDERS: (family, where its cases live, a function returning
rows with case, rlvr, trl, abs_diff, grad_max_abs_diff). The cases and the stand-in trainers that run
TRL's code live beside their tests (tests/objectives/ load them too), so this table and the tests can
never compare different things. A new family adds one entry. An objective is "equal" when |loss diff|
and max |grad diff| are both <= TOLERANCE.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

TOLERANCE = 1e-6
ROOT = Path(__file__).resolve().parents[1]


def _load(relative: str) -> ModuleType:
    path = ROOT / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _grpo() -> list[dict]:
    rows = _load("benchmarks/trl_grpo_losses.py").compare()
    return [row | {"case": f"{row['objective']}, {row['setting']}"} for row in rows]


def _dpo() -> list[dict]:
    tests = _load("tests/objectives/test_objectives_dpo.py")
    return [tests.trl_comparison(case) for case in sorted(tests.TRL_CASES)]


def _preference() -> list[dict]:
    bench = _load("benchmarks/preference_vs_trl.py")
    return [bench.compare_case(name) for name in bench.CASES]


#: (family, where its cases are defined, provider)
PROVIDERS: list[tuple[str, str, Callable[[], list[dict]]]] = [
    ("GRPO family, distill (GRPOTrainer, GMPO, GKD)", "benchmarks/trl_grpo_losses.py", _grpo),
    ("DPO (DPOTrainer)", "tests/objectives/test_objectives_dpo.py", _dpo),
    ("KTO, CPO, SimPO, ORPO", "benchmarks/preference_vs_trl.py", _preference),
]


def main() -> int:
    sys.path.insert(0, str(ROOT))
    rows = [(family, row) for family, _, provider in PROVIDERS for row in provider()]
    print("| family | case | rlvr loss | TRL loss | abs loss diff | max abs grad diff | equal |")
    print("|---|---|---:|---:|---:|---:|---|")
    for family, row in rows:
        equal = row["abs_diff"] <= TOLERANCE and row["grad_max_abs_diff"] <= TOLERANCE
        print(
            f"| {family} | {row['case']} | {row['rlvr']:.10f} | {row['trl']:.10f} | {row['abs_diff']:.2e} | "
            f"{row['grad_max_abs_diff']:.2e} | {'yes' if equal else 'NO'} |"
        )
    equal_count = sum(r["abs_diff"] <= TOLERANCE and r["grad_max_abs_diff"] <= TOLERANCE for _, r in rows)
    max_loss = max(r["abs_diff"] for _, r in rows)
    max_grad = max(r["grad_max_abs_diff"] for _, r in rows)
    print(
        f"losses vs TRL: {equal_count}/{len(rows)} objectives equal "
        f"(max |loss diff| {max_loss:.1e}, max |grad diff| {max_grad:.1e})"
    )
    return 0 if equal_count == len(rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
