"""Every algorithm's default run, one after another on the same machine: `rlvr train --verifier math
--algorithm A` from an empty folder, timed from outside; one table of held-out accuracy before → after
(95% Wilson intervals), s/step and wall time, with the CPU kind.

    python benchmarks/algorithms.py [--only grpo sft] [--keep runs/algorithms]
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from learning_curve import cpu_kind, run_default


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=["grpo", "sft", "rft", "dpo", "kto", "orpo", "simpo"])
    parser.add_argument("--keep", type=Path, default=None)
    args = parser.parse_args()
    kind = cpu_kind()
    rows = [run_default(name, [], args.keep) for name in args.only]
    print(
        f"{datetime.date.today()}  CPU {kind['model']} ({kind['capability']}, avx512_bf16={kind['avx512_bf16']}, "
        f"amx={kind['amx']}), torch {kind['torch']}; each: `rlvr train --verifier math --algorithm A`, no other flag"
    )
    print("| algorithm | before | after | gain | separated | steps | s/step | wall s |")
    print("|---|---:|---:|---:|---|---:|---:|---:|")
    for r in rows:
        b, a = r["before"], r["after"]
        print(
            f"| {r['algorithm']} | {b['accuracy']:.1%} [{b['ci'][0]:.1%}, {b['ci'][1]:.1%}] | "
            f"{a['accuracy']:.1%} [{a['ci'][0]:.1%}, {a['ci'][1]:.1%}] | {r['gain'] * 100:+.1f} | {r['separated']} | "
            f"{r['steps']} | {r['median_step_s']:.1f} | {r['process_wall_s']:.0f} |"
        )


if __name__ == "__main__":
    main()
