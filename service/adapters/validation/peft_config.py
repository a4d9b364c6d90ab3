"""Read `adapter_config.json` and check it: LORA only, supported options, rank/alpha, patterns,
and which of the base model's modules `target_modules` selects.

The config is untrusted input and only a claim (the tensor shapes in `weights` are what catch an
adapter made for another base model). Regexes in it run under a shared time budget (ReDoS guard).

Several rules here are also checked by vLLM's `PEFTHelper` (DoRA, lora_bias, bias, PiSSA-like
inits, aLoRA, layer_replication, BD-LoRA, QALoRA, r >= 1, r <= max rank). They are kept on purpose
rather than delegated: this package must stay pure Python without vLLM imports (only
`service/engine/` imports vLLM), so it runs fast and is unit-testable without the engine, and it
must refuse an adapter with a clear 400 and a stable code *before* anything reaches the engine.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import regex  # a transformers dependency; unlike `re` it takes a timeout (config regexes are untrusted)

from service.adapters.validation.base_shape import SUPPORTED_MODULES, UNSUPPORTED_MODULES, BaseModelShape
from service.adapters.validation.errors import AdapterValidationError, fail
from service.adapters.validation.folder import CONFIG_FILE

# String inits that only seed the adapter weights (same list as vLLM). Others (PiSSA, OLoRA,
# CorDA, LoftQ) rewrite the base weights when PEFT loads the adapter, so the adapter alone is wrong.
_PLAIN_STRING_INITS = frozenset({"gaussian", "eva", "orthogonal", "mica", "lora_ga"})

_MAX_CONFIG_BYTES = 1 << 20
_MAX_PATTERN_KEYS = 256
_REGEX_BUDGET_S = 1.0  # total time all untrusted regexes of one adapter may take


class RegexClock:
    """Shares one time budget across every untrusted regex of an adapter (ReDoS guard)."""

    def __init__(self, budget_s: float = _REGEX_BUDGET_S) -> None:
        self.deadline = time.monotonic() + budget_s

    def compile(self, pattern: str, what: str) -> regex.Pattern[str]:
        try:
            return regex.compile(pattern)
        except (regex.error, TypeError, ValueError, OverflowError) as exc:
            raise fail(f"{what}: {pattern!r} is not a valid regular expression ({exc}).", "invalid_adapter_config") from exc

    def fullmatch(self, compiled: regex.Pattern[str], text: str, what: str) -> bool:
        remaining = self.deadline - time.monotonic()
        try:
            if remaining <= 0:
                raise TimeoutError
            return compiled.fullmatch(text, timeout=remaining) is not None
        except TimeoutError as exc:
            raise fail(f"{what} is too complex to evaluate; list module names instead.", "unsupported_adapter_option") from exc


@dataclass
class LoraConfig:
    """The checked parts of `adapter_config.json`. `targets`: short module names selected."""

    r: int
    alpha: float
    base_model_name_or_path: str | None
    use_rslora: bool
    rank_pattern: dict[str, int]
    alpha_pattern: dict[str, float]
    targets: set[str]
    clock: RegexClock
    compiled_ranks: list[tuple[str, regex.Pattern[str]]] = field(default_factory=list)

    def rank_for(self, module_path: str) -> int:
        """The rank PEFT gives `module_path` ("model.layers.0.self_attn.q_proj"): first match wins."""
        for key, pattern in self.compiled_ranks:
            if self.clock.fullmatch(pattern, module_path, "rank_pattern key"):
                return self.rank_pattern[key]
        return self.r


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_peft_config(folder: Path, base: BaseModelShape, max_rank: int) -> LoraConfig:
    """Read and check `folder/adapter_config.json`; raise AdapterValidationError naming the problem."""
    config = _read_config(folder)
    _check_config_options(config)
    r = config.get("r")
    if not _is_int(r) or r < 1:
        raise fail(f"LoRA rank r must be an integer >= 1, got {r!r}.", "invalid_adapter_config")
    if r > max_rank:
        raise fail(f"LoRA rank r={r} is above the maximum LoRA rank {max_rank}.", "rank_too_large")
    alpha = config.get("lora_alpha")  # required: vLLM refuses a config without it
    if not _is_number(alpha) or alpha <= 0:
        raise fail(f"lora_alpha must be a positive number, got {alpha!r}.", "invalid_adapter_config")
    declared_base = config.get("base_model_name_or_path")
    if declared_base is not None and not isinstance(declared_base, str):
        raise fail("base_model_name_or_path must be a string or null.", "invalid_adapter_config")
    use_rslora = config.get("use_rslora", False)
    if not isinstance(use_rslora, bool):
        raise fail("use_rslora must be true or false.", "invalid_adapter_config")

    clock = RegexClock()
    rank_pattern, alpha_pattern, compiled_ranks = _check_patterns(config, max_rank, clock)
    targets = _configured_targets(config, base, clock)
    return LoraConfig(
        r=r, alpha=alpha, base_model_name_or_path=declared_base, use_rslora=use_rslora,
        rank_pattern=rank_pattern, alpha_pattern=alpha_pattern, targets=targets,
        clock=clock, compiled_ranks=compiled_ranks,
    )


def _read_config(folder: Path) -> dict[str, Any]:
    path = folder / CONFIG_FILE
    try:
        with path.open("rb") as fh:
            raw = fh.read(_MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise fail(f"{CONFIG_FILE} cannot be read: {exc.strerror or exc}.", "invalid_adapter_config") from exc
    if len(raw) > _MAX_CONFIG_BYTES:
        raise fail(f"{CONFIG_FILE} is larger than {_MAX_CONFIG_BYTES} bytes.", "invalid_adapter_config")
    try:
        config = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise fail(f"{CONFIG_FILE} is not valid JSON: {exc}.", "invalid_adapter_config") from exc
    if not isinstance(config, dict):
        raise fail(f"{CONFIG_FILE} must hold a JSON object.", "invalid_adapter_config")
    return config


def _check_config_options(config: dict[str, Any]) -> None:
    """Refuse PEFT features that vLLM would reject or silently apply differently."""
    peft_type = config.get("peft_type")
    if peft_type != "LORA":
        raise fail(f"peft_type is {peft_type!r}; only 'LORA' adapters are supported.", "invalid_adapter_config")

    def unsupported(option: str, why: str) -> AdapterValidationError:
        return fail(f"Unsupported adapter option {option}: {why}", "unsupported_adapter_option")

    if config.get("use_dora"):
        raise unsupported("use_dora", "DoRA adapters are not supported by the engine.")
    if config.get("modules_to_save"):
        raise unsupported(
            "modules_to_save", f"{config['modules_to_save']!r} would replace whole base-model modules."
        )
    bias = config.get("bias", "none")
    if bias != "none":
        raise unsupported("bias", f"{bias!r}; only 'none' is supported (trained biases would be lost).")
    if config.get("lora_bias"):
        raise unsupported("lora_bias", "LoRA bias terms are not supported.")
    if config.get("layers_to_transform"):
        raise unsupported("layers_to_transform", "adapters must cover layers by their tensor names only.")
    if config.get("layer_replication"):
        raise unsupported("layer_replication", "it changes the base model's layer stack.")
    init = config.get("init_lora_weights", True)
    if isinstance(init, str) and init.lower() not in _PLAIN_STRING_INITS:
        raise unsupported("init_lora_weights", f"{init!r} modifies the base model weights when loaded.")
    for option, why in (
        ("alora_invocation_tokens", "activated LoRA (aLoRA) is not supported."),
        ("use_bdlora", "block-diagonal LoRA is not supported."),
        ("use_qalora", "QALoRA is not supported."),
        ("target_parameters", "LoRA on raw parameters (e.g. MoE experts) is not supported."),
        ("trainable_token_indices", "trainable token embeddings are not supported."),
    ):
        if config.get(option):
            raise unsupported(option, why)


def _check_patterns(
    config: dict[str, Any], max_rank: int, clock: RegexClock
) -> tuple[dict[str, int], dict[str, float], list[tuple[str, regex.Pattern[str]]]]:
    """Validate rank_pattern / alpha_pattern. Keys are PEFT regexes matched against module names."""
    compiled: list[tuple[str, regex.Pattern[str]]] = []
    result: list[dict] = []
    for setting in ("rank_pattern", "alpha_pattern"):
        pattern = config.get(setting) or {}
        if not isinstance(pattern, dict):
            raise fail(f"{setting} must be an object mapping module names to values.", "invalid_adapter_config")
        if len(pattern) > _MAX_PATTERN_KEYS:
            raise fail(f"{setting} has more than {_MAX_PATTERN_KEYS} entries.", "unsupported_adapter_option")
        for key, value in pattern.items():
            if not key or len(key) > 256:
                raise fail(f"{setting} key {key!r} is empty or too long.", "unsupported_adapter_option")
            if setting == "rank_pattern":
                if not _is_int(value) or value < 1:
                    raise fail(f"rank_pattern[{key!r}] must be an integer >= 1, got {value!r}.", "invalid_adapter_config")
                if value > max_rank:
                    raise fail(
                        f"rank_pattern[{key!r}] is {value}, above the maximum LoRA rank {max_rank}.", "rank_too_large"
                    )
            elif not _is_number(value) or value <= 0:
                raise fail(f"alpha_pattern[{key!r}] must be a positive number, got {value!r}.", "invalid_adapter_config")
        # Same rule as PEFT's get_pattern_key / vLLM's PEFTHelper: suffix at a '.' boundary, first
        # match wins. alpha keys are compiled only so a broken one is refused here, not in vLLM.
        keyed = [(key, clock.compile(rf"(.*\.)?({key})", f"{setting} key")) for key in pattern]
        if setting == "rank_pattern":
            compiled = keyed
        result.append(dict(pattern))
    return result[0], result[1], compiled


def _configured_targets(config: dict[str, Any], base: BaseModelShape, clock: RegexClock) -> set[str]:
    """Apply PEFT's target_modules rule to the base model's module names; return short names hit."""
    targets = config.get("target_modules")
    names = base.module_names()
    if targets is None or targets == [] or targets == "":
        raise fail("target_modules is missing from adapter_config.json.", "invalid_adapter_config")
    hit: set[str | None] = set()
    unsupported_hits: set[str] = set()

    def record(full: str, short: str | None) -> None:
        hit.add(short)
        if short is None:
            unsupported_hits.add(full.rsplit(".", 1)[-1])

    if isinstance(targets, str):
        if targets == "all-linear":  # PEFT: every nn.Linear except the output layer
            return set(SUPPORTED_MODULES)
        if len(targets) > 1024:
            raise fail("target_modules regex is too long.", "unsupported_adapter_option")
        compiled = clock.compile(targets, "target_modules")
        for full, short in names:
            if clock.fullmatch(compiled, full, "target_modules regex"):
                record(full, short)
        if not hit:
            raise fail(
                f"target_modules regex {targets!r} matches none of the base model's modules "
                f"({', '.join(SUPPORTED_MODULES)}).",
                "unknown_target_module",
            )
    elif isinstance(targets, list) and all(isinstance(t, str) and t for t in targets):
        for target in targets:
            matched = [(full, short) for full, short in names if full == target or full.endswith("." + target)]
            if not matched:
                if target.rsplit(".", 1)[-1] in UNSUPPORTED_MODULES:
                    unsupported_hits.add(target)
                    continue
                raise fail(
                    f"target_modules entry {target!r} is not a module of the base model "
                    f"(it has {', '.join(SUPPORTED_MODULES)}); the adapter was made for another architecture.",
                    "unknown_target_module",
                )
            for full, short in matched:
                record(full, short)
    else:
        raise fail("target_modules must be a list of module names or a regex string.", "invalid_adapter_config")
    if unsupported_hits:
        raise fail(
            f"target_modules includes {', '.join(sorted(unsupported_hits))}: LoRA on embeddings / lm_head "
            "is not supported.",
            "unsupported_adapter_option",
        )
    return {short for short in hit if short is not None}
