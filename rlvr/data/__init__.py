"""Data as `Example`s: named benchmarks and files, the `arith` generator, supervised and preference rows, the
prompt stream, the one prompt template, and lm-eval's stock prompts."""

from rlvr.data.benchmarks import Benchmark, benchmark_names, load_benchmark, load_file, read_rows
from rlvr.data.specs import load_examples
from rlvr.data.stream import PromptStream

__all__ = ["Benchmark", "PromptStream", "benchmark_names", "load_benchmark", "load_examples", "load_file", "read_rows"]
