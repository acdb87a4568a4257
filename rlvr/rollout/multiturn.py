"""Multi-turn rollouts, token in and token out: model turns, batched tool calls, masked observation tokens.

Generate until an environment's stop, run the calls of all unfinished trajectories as one batch, append
each observation's own tokens (mask 0, logprob 0) to the engine's token ids, and continue."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from rlvr.environments.base import Call, Environment, Observation
from rlvr.errors import InputError
from rlvr.rollout.base import Engine, SamplingConfig, TokenPrompt
from rlvr.types import Rollout

__all__ = ["FINISH_REASONS", "generate_multiturn", "segment_rollout", "turn_seed"]

#: how a multi-turn trajectory can end
FINISH_REASONS = {
    "stop": "the model ended its turn without a call (EOS or a stop string of the sampling config)",
    "length": "model and tool tokens together reached max_new_tokens",
    "context": "the prompt and everything after it reached the engine's max_model_len",
    "tool_budget": "the model asked for a call after env.max_turns calls (not run)",
}


def turn_seed(call_seed: int, prompt: int, sample: int, turn: int) -> int:
    """The seed of one trajectory's turn: a hash of who it is and which turn, never of its batch."""
    digest = hashlib.blake2b(f"{call_seed}:{prompt}:{sample}:{turn}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 2


@dataclass
class _Trajectory:
    """One trajectory being built: every list grows together, one entry per generated token."""

    prompt_index: int
    sample: int
    prompt_ids: tuple[int, ...]
    state: Any
    ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    mask: list[int] = field(default_factory=list)
    segments: list[tuple[str, int, int]] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)  # the model's own text, turn by turn
    calls: list[dict[str, Any]] = field(default_factory=list)
    finish: str | None = None

    def extend(self, kind: str, ids: Sequence[int], logprobs: Sequence[float]) -> None:
        start = len(self.ids)
        self.ids.extend(ids)
        self.logprobs.extend(logprobs)
        self.mask.extend([1 if kind == "model" else 0] * len(ids))
        if self.segments and self.segments[-1][0] == kind:
            self.segments[-1] = (kind, self.segments[-1][1], len(self.ids))
        elif ids:
            self.segments.append((kind, start, len(self.ids)))

    def room(self, max_new_tokens: int, max_model_len: int) -> tuple[int, str]:
        """How many more tokens fit, and which limit binds ("length" or "context")."""
        budget = max_new_tokens - len(self.ids)
        context = max_model_len - len(self.prompt_ids) - len(self.ids)
        return (budget, "length") if budget <= context else (context, "context")

    def rollout(self) -> Rollout:
        return Rollout(
            prompt_index=self.prompt_index,
            text="".join(self.texts),
            token_ids=tuple(self.ids),
            logprobs=tuple(self.logprobs),
            finish_reason=self.finish or "length",
            prompt_token_ids=self.prompt_ids,
            loss_mask=tuple(self.mask),
            segments=tuple(self.segments),
            tool_calls=tuple(self.calls),
        )


def generate_multiturn(
    engine: Engine,
    env: Environment,
    prompts: Sequence[Sequence[int]],
    n: int = 1,
    sampling: SamplingConfig | None = None,
    *,
    seed: int | None = None,
    tasks: Sequence[Any] | None = None,
    timings: dict[str, float] | None = None,
) -> list[Rollout]:
    """len(prompts) * n trajectories, prompt-major like Engine.generate. Each turn is sampled from
    the concatenation of the prompt's ids, the engine's ids and the observations' ids (never from
    re-encoded text) with a seed of its own (turn_seed), so a trajectory is the same alone or in a
    group. Model and tool tokens together stay within max_new_tokens and the engine's max_model_len.
    `tasks[i]` goes to env.reset for prompt i (never the gold). `timings`, when given, gets
    generate_s, tool_s and turns added."""
    sampling = sampling or SamplingConfig()
    if n < 1:
        raise InputError(f"samples per prompt must be >= 1, got {n}")
    call_seed = sampling.seed if sampling.seed is not None else seed
    if call_seed is None:
        raise InputError("a multi-turn rollout needs a seed: set sampling.seed or pass seed=")
    if tasks is not None and len(tasks) != len(prompts):
        raise InputError(f"{len(tasks)} tasks for {len(prompts)} prompts")
    max_model_len = int(engine.max_model_len)  # type: ignore[attr-defined]
    turn_sampling = replace(sampling, seed=call_seed, stop=tuple(dict.fromkeys((*sampling.stop, *env.stop))))
    trajectories = [
        _Trajectory(i, j, tuple(int(t) for t in prompt), env.reset(tasks[i] if tasks is not None else None))
        for i, prompt in enumerate(prompts)
        for j in range(n)
    ]
    clock = {"generate_s": 0.0, "tool_s": 0.0, "turns": 0}
    for turn in range(env.max_turns + 1):
        active = [t for t in trajectories if t.finish is None]
        if not active:
            break
        limits = [t.room(sampling.max_new_tokens, max_model_len) for t in active]
        requests = [
            TokenPrompt(
                t.prompt_ids + tuple(t.ids),
                seed=turn_seed(call_seed, t.prompt_index, t.sample, turn),
                max_new_tokens=room,
            )
            for t, (room, _) in zip(active, limits, strict=True)
        ]
        started = time.perf_counter()
        outputs = engine.generate(requests, 1, turn_sampling)
        clock["generate_s"] += time.perf_counter() - started
        clock["turns"] += 1
        pending: list[tuple[_Trajectory, Call]] = []
        for t, out, (room, limit) in zip(active, outputs, limits, strict=True):
            call = _take_turn(t, out, engine.tokenizer, env)
            if call is None:
                t.finish = "stop" if out.finish_reason == "stop" else limit
            elif len(t.calls) >= env.max_turns:
                t.finish = "tool_budget"
            elif len(out.token_ids) >= room:  # the call's stop took the last token that fit
                t.finish = limit
            else:
                pending.append((t, call))
        if pending:
            started = time.perf_counter()
            observations = env.execute([(t.state, call) for t, call in pending])
            clock["tool_s"] += time.perf_counter() - started
            for (t, call), obs in zip(pending, observations, strict=True):
                _append_observation(t, call, obs, engine.tokenizer, sampling.max_new_tokens, max_model_len, turn)
    for t in trajectories:  # still active after the last allowed turn: the loop's range ran out
        t.finish = t.finish or "tool_budget"
    if timings is not None:
        for key, value in clock.items():
            timings[key] = timings.get(key, 0) + value
    return [t.rollout() for t in trajectories]


def _take_turn(t: _Trajectory, out: Rollout, tokenizer: Any, env: Environment) -> Call | None:
    """Append the engine's tokens and logprobs as they are; the call the turn ends in, if any."""
    t.extend("model", out.token_ids, out.logprobs)
    # decoded only to read the call; the next context is built from the token ids themselves
    spoken = tokenizer.decode(list(out.token_ids), skip_special_tokens=True)
    call = env.parse_call(t.state, spoken)
    t.texts.append(spoken if call is not None else out.text)
    return call


def _append_observation(
    t: _Trajectory, call: Call, obs: Observation, tokenizer: Any, max_new_tokens: int, max_model_len: int, turn: int
) -> None:
    """The observation tokenized alone, cut to what fits (then the trajectory ends there), logprob 0."""
    ids = tokenizer(obs.text, add_special_tokens=False)["input_ids"]
    room, limit = t.room(max_new_tokens, max_model_len)
    if len(ids) >= room:
        ids, t.finish = ids[: max(room, 0)], limit
    t.extend("tool", ids, [0.0] * len(ids))
    t.calls.append(
        {
            "turn": turn,
            "code": call.content,
            "status": obs.status.value,
            "observation": obs.text,
            "tokens": len(ids),
            **{k: v for k, v in obs.details.items() if k in ("seconds", "truncated")},
        }
    )


def segment_rollout(
    tokenizer: Any, prompt: str, parts: Sequence[tuple[str, str]], index: int = 0, *, eos: bool = True
) -> Rollout:
    """A fixed multi-turn trajectory (an SFT tool trace) as the Rollout RL would have built: each part
    tokenized alone, as an observation is (never the whole text at once), tool parts masked with
    logprob 0, the end-of-sequence token after the last model part; `text` is the model's parts."""
    t = _Trajectory(index, 0, tuple(tokenizer(prompt, add_special_tokens=False)["input_ids"]), None)
    for kind, text in parts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        t.extend(kind, ids, [0.0] * len(ids))
        if kind == "model":
            t.texts.append(text)
    if eos and tokenizer.eos_token_id is not None:
        t.extend("model", [tokenizer.eos_token_id], [0.0])
    t.finish = "stop"
    return t.rollout()
