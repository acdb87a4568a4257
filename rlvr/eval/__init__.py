"""Evaluation: run a model on Examples (generate → verify → summary, flushed as made), the sample store and
resume, estimators (pass@k, maj@k, intervals), best-of-N selection, and what the console shows."""

from rlvr.eval.display import summary_table
from rlvr.eval.run import finished_summary, run_eval
from rlvr.eval.summary import summarize

__all__ = ["finished_summary", "run_eval", "summarize", "summary_table"]
