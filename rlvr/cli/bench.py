"""`rlvr bench`: several checkpoints on the same benchmarks (the evals of `rlvr eval`), side by side in a
comparison table and bar chart that name the settings of every number."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from rlvr.cli.eval import _engine, _evaluate, _plan, _slug, _warn
from rlvr.cli.eval_options import generation_options
from rlvr.errors import InputError
from rlvr.io import write_atomic, write_json


@click.command("bench")
@click.argument("checkpoints", nargs=-1, required=True)
@click.option(
    "--output",
    "-o",
    type=click.Path(file_okay=False),
    default="bench-results",
    show_default=True,
    help="Folder for per-checkpoint eval dirs (reused when finished) and comparison.{md,json,png}.",
)
@generation_options
def bench(checkpoints: tuple[str, ...], output: str, **opts: Any) -> None:
    """Evaluate each of CHECKPOINTS on the benchmarks and write a comparison table and bar chart."""
    plan = _plan(opts)
    out = Path(output)
    slugs = [_slug(c) for c in checkpoints]
    if len(set(slugs)) != len(slugs):
        raise InputError("two checkpoints map to the same results folder name; give distinct paths")
    results = {
        c: _evaluate(lambda c=c: _engine(c, opts), c, plan, opts, out / s, quiet=True)
        for c, s in zip(checkpoints, slugs, strict=True)
    }
    from rich.console import Console

    table, settings = write_comparison(results, out)
    Console().print(table)
    click.echo("settings: " + "\n          ".join(settings))
    click.echo(f"comparison in {out}/comparison.md, comparison.json, comparison.png")


def write_comparison(results: dict[str, dict[str, dict]], out: Path):
    """comparison.json (every summary's headline numbers and settings), comparison.md, comparison.png (bars
    with 95% CI error bars); returns the rich table and a line per benchmark naming its settings."""
    from rich.table import Table

    from rlvr.eval.spec import describe, differences, settings_of

    benchmarks = list(dict.fromkeys(b for per in results.values() for b in per))
    rows = {
        ckpt: {
            b: {
                **{
                    k: s[k]
                    for k in ("accuracy", "ci95", "ci_method", "metric", "n_problems", "samples", "pass@k", "maj@k")
                },
                "settings": settings_of(s),
            }
            for b, s in per.items()
        }
        for ckpt, per in results.items()
    }
    first = {b: next(per[b]["settings"] for per in rows.values() if b in per) for b in benchmarks}
    for ckpt, per in rows.items():
        for b, row in per.items():
            changed = differences(first[b], row["settings"])
            if changed:
                _warn(
                    f"{b}: {ckpt} was evaluated with other settings than the first checkpoint ({'; '.join(changed)}): "
                    "its accuracy is not comparable"
                )
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "comparison.json", rows)
    cell = lambda r: f"{r['accuracy']:.1%} [{r['ci95'][0]:.1%}, {r['ci95'][1]:.1%}]"  # noqa: E731
    lines = ["| checkpoint | " + " | ".join(benchmarks) + " |", "| --- |" + " --- |" * len(benchmarks)]
    table = Table(title="rlvr bench (accuracy, 95% CI)")
    table.add_column("checkpoint")
    for b in benchmarks:
        table.add_column(b, justify="right")
    for ckpt, per in rows.items():
        cells = [cell(per[b]) if b in per else "-" for b in benchmarks]
        lines.append(f"| {ckpt} | " + " | ".join(cells) + " |")
        table.add_row(ckpt, *cells)
    settings = [describe(first[b]) for b in benchmarks]  # each starts with its benchmark's spec
    lines += ["", *(f"- {line}" for line in settings)]
    write_atomic(out / "comparison.md", "\n".join(lines) + "\n")
    _bar_chart(rows, benchmarks, out / "comparison.png")
    return table, settings


def _bar_chart(rows: dict[str, dict[str, dict]], benchmarks: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    width = 0.8 / max(1, len(rows))
    fig, ax = plt.subplots(figsize=(max(4, 1.6 * len(benchmarks) * max(1, len(rows)) ** 0.5), 3.5))
    x = np.arange(len(benchmarks))
    for i, (ckpt, per) in enumerate(rows.items()):
        acc = np.array([per[b]["accuracy"] if b in per else np.nan for b in benchmarks]) * 100
        lo = np.array([per[b]["ci95"][0] if b in per else np.nan for b in benchmarks]) * 100
        hi = np.array([per[b]["ci95"][1] if b in per else np.nan for b in benchmarks]) * 100
        ax.bar(x + (i - (len(rows) - 1) / 2) * width, acc, width, yerr=[acc - lo, hi - acc], capsize=3, label=ckpt)
    ax.set_xticks(x, benchmarks)
    ax.set_ylabel("accuracy (%), 95% CI")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
