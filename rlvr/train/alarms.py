"""The training alarms: each measures a problem that biases the gradient or wastes the run, and advises a
change of setting computed from the run's configuration (never the setting already in force)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rlvr.train.disagreement import verifier_disagreement

__all__ = ["ALARMS", "WINDOW", "Alarm", "AlarmState", "advise", "check_alarms", "default_settings", "settings_of"]

#: rates are judged over this many steps: one step of 4 prompts is noise, five in a row waste the run
WINDOW = 5

#: the sampler and the learner disagree when the importance weights of its tokens leave 1 by this much on average,
#: or this share of them is truncated at tis_cap
SAMPLER_DRIFT = 0.05

_EMA = 0.7  # weight of the previous value in the smoothed reward

#: dotted option -> the value in force ("auto" already resolved where the trainer knows it)
Settings = Mapping[str, Any]


@dataclass
class AlarmState:
    """What alarms remember across steps (saved in checkpoints so a resumed run agrees)."""

    best_reward_ema: float = -math.inf
    reward_ema: float | None = None
    fired: dict[str, int] = field(default_factory=dict)  # alarm -> times fired
    recent: dict[str, list[float]] = field(default_factory=dict)  # windowed signal -> its last WINDOW values
    disagreement: tuple[float, int] = (0.0, 0)  # reward.cross_check: earlier steps' disagreement rates summed, steps


def _windowed(s: AlarmState, key: str, value: float | None) -> float | None:
    """The mean of `key` over the last WINDOW steps that reported it; None until WINDOW of them have."""
    if value is None:
        return None
    values = s.recent.setdefault(key, [])
    values.append(float(value))
    del values[:-WINDOW]
    return sum(values) / WINDOW if len(values) == WINDOW else None


def _cut_off(m: dict, s: AlarmState) -> str | None:
    # a truncated completion that still stated its answer is scored as any other: only a cut-off answer is lost
    rate = _windowed(s, "cut_off_rate", m.get("cut_off_rate"))
    if rate is not None and rate > 0.5:
        return f"{rate:.0%} of completions over the last {WINDOW} steps were cut at max_new_tokens before any answer"
    return None


def _zero_variance(m: dict, s: AlarmState) -> str | None:
    frac = _windowed(s, "zero_variance_fraction", m.get("zero_variance_fraction"))
    if frac is not None and frac > 0.8:
        return (
            f"loss is ~0 because {frac:.0%} of groups over the last {WINDOW} steps had the same reward "
            "(all right or all wrong): no learning signal; use harder/easier data"
        )
    return None


def _verifier_failures(m: dict, s: AlarmState) -> str | None:
    # a correct answer whose verdict timed out is scored 0: the reward itself is wrong
    rate = _windowed(s, "verifier_failure_rate", m.get("verifier_failure_rate"))
    if rate is not None and rate > 0.02:
        return f"{rate:.0%} of verdicts over the last {WINDOW} steps timed out or errored (counted, scored 0)"
    return None


def _no_answer(m: dict, s: AlarmState) -> str | None:
    rate = m.get("no_answer_rate")
    finished = None if rate is None else rate - m.get("cut_off_rate", 0.0)  # ended by the model, yet no answer
    rate = _windowed(s, "finished_no_answer_rate", finished)
    if rate is not None and rate > 0.8:
        return (
            f"{rate:.0%} of completions over the last {WINDOW} steps ended with no answer the verifier could "
            "extract: check the prompt template/instruction (data.instruction)"
        )
    return None


def _reward_collapse(m: dict, s: AlarmState) -> str | None:
    if s.reward_ema is not None and s.best_reward_ema > 0.1 and s.reward_ema < 0.5 * s.best_reward_ema:
        return f"reward collapsed: smoothed reward {s.reward_ema:.3f} is under half its best {s.best_reward_ema:.3f}"
    return None


def _engine_stale(m: dict, s: AlarmState) -> str | None:
    if m.get("sync_changed") is False and m.get("param_delta", 0.0) > 0:
        return (
            "weights unchanged after a sync: the trainer's weights moved but the engine's outputs "
            "did not; the sampler is generating with stale weights"
        )
    return None


def _sampler_mismatch(m: dict, s: AlarmState) -> str | None:
    """The sampler's own logprobs against the learner's on the sampled tokens (the truncated importance weights
    of a step that learned; a step without them has nothing to show). Weights near 1 are corrected without bias;
    weights truncated at tis_cap, or far off 1, bias the gradient."""
    if "tis_weight_mean" not in m:
        return None
    mean, truncated = m["tis_weight_mean"], m.get("tis_truncated_fraction", 0.0)
    if abs(mean - 1.0) <= SAMPLER_DRIFT and truncated <= SAMPLER_DRIFT:
        return None
    lag = f"; the engine's copy misses {m['engine_lag']:.0%} of the change since the start" if "engine_lag" in m else ""
    return (
        f"the sampler's logprobs drift from the learner's (importance weight mean {mean:.3f}, {truncated:.0%} "
        f"truncated at tis_cap, mean |logprob gap| {m.get('sampler_logprob_gap', float('nan')):.3f}){lag}: "
        "the gradient is biased toward the sampler's policy"
    )


def _updates_rounded_away(m: dict, s: AlarmState) -> str | None:
    lost = m.get("update_rounded_away", 0.0)
    if lost > 0.5 and m.get("lr", 1.0) > 0:  # at lr 0 (a warm-up's first step) nothing was meant to move
        return (
            f"{lost:.0%} of this step's optimizer update was rounded away by the weights' precision "
            "(model.master_dtype): the model barely learns"
        )
    return None


def _nothing_to_learn(m: dict, s: AlarmState) -> str | None:
    for key, what in (
        ("kept", "no correct completion to fine-tune on (rft)"),
        ("pairs", "no prompt had completions with different rewards to pair (dpo)"),
    ):
        empty = _windowed(s, f"{key}_empty", None if key not in m else float(m[key] == 0))
        if empty == 1.0:
            return (
                f"loss is 0 because for {WINDOW} steps there was {what}: the steps changed nothing but "
                "Adam's state; use easier data"
            )
    return None


def _times(key: str, factor: float, cast: type = float) -> Callable[[Settings], dict[str, Any]]:
    """Advice: `key` scaled by `factor` from its value in force (none where it has no value)."""
    return lambda c: {} if c.get(key) is None else {key: cast(float(f"{c[key] * factor:.3g}"))}


def _both(*parts: Callable[[Settings], dict[str, Any]]) -> Callable[[Settings], dict[str, Any]]:
    return lambda c: {k: v for part in parts for k, v in part(c).items()}


def _collapse_advice(c: Settings) -> dict[str, Any]:
    kl = {"grpo.beta": 0.04} if c.get("algorithm") == "grpo" else {}
    return {**_times("optimizer.lr", 0.5)(c), **kl}


def _style_advice(c: Settings) -> dict[str, Any]:
    return {"data.style": "fewshot" if c.get("data.style") != "fewshot" else "chat"}


@dataclass(frozen=True)
class Alarm:
    """check(metrics, state) says what is wrong (or None); advice(settings) the options to change, and to what."""

    check: Callable[[dict, AlarmState], str | None]
    advice: Callable[[Settings], dict[str, Any]]


#: alarm name -> its check and its advice
ALARMS: dict[str, Alarm] = {
    "truncation": Alarm(
        _cut_off, _both(_times("rollout.max_new_tokens", 2, int), lambda c: {"reward.truncated": "mask"})
    ),
    "zero_variance": Alarm(
        _zero_variance, _both(_times("rollout.n", 2, int), lambda c: {"grpo.dynamic_sampling": True})
    ),
    "verifier_failures": Alarm(_verifier_failures, _times("reward.timeout", 2)),
    "no_answer": Alarm(_no_answer, _style_advice),
    "reward_collapse": Alarm(_reward_collapse, _collapse_advice),
    "weights_unchanged": Alarm(_engine_stale, lambda c: {"rollout.engine": "hf"}),
    "sampler_mismatch": Alarm(
        _sampler_mismatch,
        _both(lambda c: {"rollout.dtype": "float32", "rollout.async": 0}, _times("grpo.tis_cap", 2)),
    ),
    "updates_rounded_away": Alarm(
        _updates_rounded_away, _both(lambda c: {"model.master_dtype": "float32"}, _times("optimizer.lr", 2))
    ),
    "nothing_to_learn": Alarm(
        _nothing_to_learn, _both(_times("rollout.n", 2, int), _times("rollout.temperature", 1.5))
    ),
    # keep the policy near text the reward judges well
    "verifier_disagreement": Alarm(verifier_disagreement, _collapse_advice),
}


def advise(name: str, settings: Settings) -> dict[str, Any]:
    """The changes alarm `name` advises under `settings`: its advice without any value already in force (the one
    place that rule lives; an alarm left with no advice where it fires is a bug its test catches)."""
    return {k: v for k, v in ALARMS[name].advice(settings).items() if settings.get(k) != v}


def settings_of(config: Any, **in_force: Any) -> dict[str, Any]:
    """A TrainConfig as dotted option -> value, with `in_force` (e.g. rollout.dtype resolved) on top."""
    from rlvr.config import config_keys, get_key

    flat = {key: get_key(config, key) for key in config_keys(config)}
    return {**flat, **{k.replace("__", "."): v for k, v in in_force.items()}}


def default_settings(algorithm: str = "grpo", device: str = "cpu") -> dict[str, Any]:
    """The settings of `algorithm`'s default run on `device`."""
    from rlvr.config import TrainConfig, resolve_auto

    return settings_of(resolve_auto(TrainConfig(algorithm=algorithm), device))


def check_alarms(metrics: dict, state: AlarmState, settings: Settings | None = None) -> dict[str, str]:
    """Update `state` with this step and return {alarm: message with its advice} for every alarm that fires."""
    reward = metrics.get("reward_mean")
    if reward is not None and not math.isnan(reward):
        state.reward_ema = reward if state.reward_ema is None else _EMA * state.reward_ema + (1 - _EMA) * reward
        state.best_reward_ema = max(state.best_reward_ema, state.reward_ema)
    problems = {name: problem for name, alarm in ALARMS.items() if (problem := alarm.check(metrics, state))}
    if problems and settings is None:
        settings = default_settings()
    fired = {}
    for name, problem in problems.items():
        changes = advise(name, settings or {})
        fired[name] = problem + ("; try " + ", ".join(f"{k}={v}" for k, v in changes.items()) if changes else "")
        state.fired[name] = state.fired.get(name, 0) + 1
    return fired
