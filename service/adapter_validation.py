"""Check a PEFT LoRA adapter folder before it is registered, and unpack uploaded archives safely.

Pure Python: no HTTP, no vLLM, no torch. An adapter is untrusted input, so nothing here unpickles,
imports or executes anything from it; the safetensors header is parsed by hand with bounds checks
and every tensor shape is compared with the served base model. The config is only a claim: the
tensor shapes are what catch an adapter trained for another base model.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import math
import os
import re
import shutil
import stat
import struct
import tarfile
import time
import zlib
from pathlib import Path, PurePosixPath
from typing import IO, Any

import regex  # a transformers dependency; unlike `re` it takes a timeout (config regexes are untrusted)
from pydantic import BaseModel, Field

NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
_NAME_RE = re.compile(NAME_PATTERN)

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"

# Formats that are (or may be) pickles: loading them can run arbitrary code, so they are refused
# outright rather than ignored, and never opened.
PICKLE_SUFFIXES = frozenset({".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib"})

ATTENTION_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP_MODULES = ("gate_proj", "up_proj", "down_proj")
SUPPORTED_MODULES = ATTENTION_MODULES + MLP_MODULES
# PEFT can target these, but the served engine is not configured for embedding/lm_head LoRA.
UNSUPPORTED_MODULES = ("embed_tokens", "lm_head")

# String inits that only seed the adapter weights (same list as vLLM). Others (PiSSA, OLoRA,
# CorDA, LoftQ) rewrite the base weights when PEFT loads the adapter, so the adapter alone is wrong.
_PLAIN_STRING_INITS = frozenset({"gaussian", "eva", "orthogonal", "mica", "lora_ga"})

_MAX_CONFIG_BYTES = 1 << 20
_MAX_HEADER_BYTES = 100 << 20  # the safetensors library's own limit
_MAX_FOLDER_ENTRIES = 256
_MAX_PATTERN_KEYS = 256
_REGEX_BUDGET_S = 1.0  # total time all untrusted regexes of one adapter may take

# safetensors dtype -> bytes per element (byte-aligned dtypes only).
_DTYPE_SIZES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8, "C64": 8,
}
_LORA_DTYPES = frozenset({"F16", "BF16", "F32", "F64"})

_TENSOR_RE = re.compile(
    r"base_model\.model\.model\.layers\.(?P<layer>0|[1-9][0-9]{0,5})\.(?P<parent>[A-Za-z0-9_]+)"
    r"\.(?P<module>[A-Za-z0-9_]+)\.lora_(?P<ab>[AB])\.weight"
)


class AdapterValidationError(Exception):
    """A refused adapter, archive, name or path. `code` is stable; `message` is for humans."""

    type = "invalid_request_error"

    def __init__(self, message: str, code: str, param: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param
        self.status = status

    def __repr__(self) -> str:
        return f"AdapterValidationError(code={self.code!r}, status={self.status}, message={self.message!r})"


def _fail(message: str, code: str, param: str | None = None, status: int = 400) -> AdapterValidationError:
    return AdapterValidationError(message, code, param=param, status=status)


# --------------------------------------------------------------------------------------------
# Names and paths
# --------------------------------------------------------------------------------------------


def validate_adapter_name(name: str, reserved: set[str]) -> None:
    """Refuse names that are malformed or would shadow the base model or a route."""
    # fullmatch: `$` alone would accept a trailing newline.
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise _fail(
            f"Invalid adapter name {name!r}: use 1-64 characters of lowercase letters, digits, '.', '_' "
            "or '-', starting with a letter or digit.",
            "invalid_adapter_name",
            param="name",
        )
    # Reserved names (e.g. "SmolLM2-135M-Instruct") may be mixed case; clients compare loosely.
    if name in {r.lower() for r in reserved}:
        raise _fail(
            f"Adapter name {name!r} is reserved: it would shadow the base model or a route.",
            "invalid_adapter_name",
            param="name",
        )


def resolve_source_path(path: str, allowed_roots: list[Path]) -> Path:
    """Resolve `path` (symlinks included) and require it to lie inside one of `allowed_roots`.

    Relative paths are taken relative to each root in turn. Anything outside the roots is a 400
    whether or not it exists, so the endpoint cannot be used to probe the filesystem; a path
    inside a root that does not exist is a 404.
    """
    if not isinstance(path, str) or not path.strip() or "\x00" in path:
        raise _fail("Adapter path must be a non-empty string.", "invalid_adapter_path", param="path")
    raw = Path(path)
    # Refused even when it would resolve back inside: it is never needed and hides intent.
    if ".." in raw.parts:
        raise _fail(
            f"Adapter path {path!r} contains '..'; give a path inside the allowed adapter directories.",
            "adapter_path_outside_roots",
            param="path",
        )
    roots: list[Path] = []
    for root in allowed_roots:
        try:
            roots.append(Path(root).resolve(strict=False))
        except (OSError, RuntimeError):
            continue
    candidates = [raw] if raw.is_absolute() else [root / raw for root in roots]

    inside: list[Path] = []
    for candidate in candidates:
        try:
            resolved = candidate.resolve(strict=False)
        except (OSError, RuntimeError, ValueError) as exc:  # symlink loops, odd names
            raise _fail(f"Adapter path {path!r} cannot be resolved: {exc}.", "invalid_adapter_path", "path") from exc
        if any(resolved == root or resolved.is_relative_to(root) for root in roots):
            inside.append(resolved)
    if not inside:
        raise _fail(
            f"Adapter path {path!r} is outside the allowed adapter directories "
            f"({', '.join(str(r) for r in roots) or 'none configured'}).",
            "adapter_path_outside_roots",
            param="path",
        )
    for resolved in inside:
        try:
            final = resolved.resolve(strict=True)
        except FileNotFoundError:
            continue
        except (OSError, RuntimeError) as exc:
            raise _fail(f"Adapter path {path!r} cannot be resolved: {exc}.", "invalid_adapter_path", "path") from exc
        # Re-check: a symlink could have been swapped in between the two resolutions.
        if any(final == root or final.is_relative_to(root) for root in roots):
            return final
    raise _fail(f"Adapter path {path!r} does not exist.", "adapter_not_found", param="path", status=404)


# --------------------------------------------------------------------------------------------
# Base model shape
# --------------------------------------------------------------------------------------------


class BaseModelShape(BaseModel):
    """The dimensions of a Llama-style base model that LoRA weights must agree with."""

    hidden_size: int = Field(gt=0)
    intermediate_size: int = Field(gt=0)
    num_attention_heads: int = Field(gt=0)
    num_key_value_heads: int = Field(gt=0)
    head_dim: int = Field(gt=0)
    num_hidden_layers: int = Field(gt=0)
    vocab_size: int = Field(gt=0)
    tie_word_embeddings: bool = False

    @classmethod
    def from_model_dir(cls, model_dir: Path) -> BaseModelShape:
        """Read `config.json` of a Hugging Face model folder. Raises ValueError if it is unusable
        (a server misconfiguration, not a client error)."""
        config_path = Path(model_dir) / "config.json"
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read base model config {config_path}: {exc}") from exc
        if not isinstance(config, dict):
            raise ValueError(f"base model config {config_path} is not a JSON object")
        try:
            hidden = config["hidden_size"]
            heads = config["num_attention_heads"]
            head_dim = config.get("head_dim") or (hidden // heads if isinstance(hidden, int) and heads else None)
            return cls(
                hidden_size=hidden,
                intermediate_size=config["intermediate_size"],
                num_attention_heads=heads,
                # Absent in older configs: plain multi-head attention.
                num_key_value_heads=config.get("num_key_value_heads") or heads,
                head_dim=head_dim,
                num_hidden_layers=config["num_hidden_layers"],
                vocab_size=config["vocab_size"],
                tie_word_embeddings=bool(config.get("tie_word_embeddings", False)),
            )
        except KeyError as exc:
            raise ValueError(f"base model config {config_path} lacks {exc.args[0]!r}") from exc
        except ValueError as exc:  # pydantic.ValidationError is a ValueError
            raise ValueError(f"base model config {config_path} is invalid: {exc}") from exc

    @property
    def modules(self) -> dict[str, tuple[int, int]]:
        """LoRA-targetable module -> (in_features, out_features) of its nn.Linear."""
        q_out = self.num_attention_heads * self.head_dim
        kv_out = self.num_key_value_heads * self.head_dim
        return {
            "q_proj": (self.hidden_size, q_out),
            "k_proj": (self.hidden_size, kv_out),
            "v_proj": (self.hidden_size, kv_out),
            "o_proj": (q_out, self.hidden_size),
            "gate_proj": (self.hidden_size, self.intermediate_size),
            "up_proj": (self.hidden_size, self.intermediate_size),
            "down_proj": (self.intermediate_size, self.hidden_size),
        }

    @staticmethod
    def parent_of(module: str) -> str:
        return "self_attn" if module in ATTENTION_MODULES else "mlp"

    def module_names(self) -> list[tuple[str, str | None]]:
        """Every full module name PEFT would see, paired with its short name (None: unsupported)."""
        names: list[tuple[str, str | None]] = [("model.embed_tokens", None), ("lm_head", None)]
        for layer in range(self.num_hidden_layers):
            for module in SUPPORTED_MODULES:
                names.append((f"model.layers.{layer}.{self.parent_of(module)}.{module}", module))
        return names


# --------------------------------------------------------------------------------------------
# Adapter inspection
# --------------------------------------------------------------------------------------------


class AdapterInspection(BaseModel):
    """What a valid adapter holds. `target_modules` lists the modules that actually have weights."""

    rank: int
    alpha: float
    target_modules: list[str]
    base_model_name_or_path: str | None
    use_rslora: bool = False
    rank_pattern: dict[str, int] = Field(default_factory=dict)
    alpha_pattern: dict[str, float] = Field(default_factory=dict)
    max_rank: int  # largest rank any module actually uses
    num_layers: int  # layers that carry LoRA weights
    num_tensors: int
    weights_sha256: str
    size_bytes: int
    files: list[str]  # relative to the adapter folder, sorted


class _RegexClock:
    """Shares one time budget across every untrusted regex of an adapter (ReDoS guard)."""

    def __init__(self, budget_s: float = _REGEX_BUDGET_S) -> None:
        self.deadline = time.monotonic() + budget_s

    def compile(self, pattern: str, what: str) -> regex.Pattern[str]:
        try:
            return regex.compile(pattern)
        except (regex.error, TypeError, ValueError, OverflowError) as exc:
            raise _fail(f"{what}: {pattern!r} is not a valid regular expression ({exc}).", "invalid_adapter_config") from exc

    def fullmatch(self, compiled: regex.Pattern[str], text: str, what: str) -> bool:
        remaining = self.deadline - time.monotonic()
        try:
            if remaining <= 0:
                raise TimeoutError
            return compiled.fullmatch(text, timeout=remaining) is not None
        except TimeoutError as exc:
            raise _fail(f"{what} is too complex to evaluate; list module names instead.", "unsupported_adapter_option") from exc


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _scan_folder(folder: Path, max_size_bytes: int) -> tuple[list[str], int]:
    """List the folder's files, refusing pickles, links leaving the folder, special files and
    oversized folders. Never opens a file."""
    files: list[str] = []
    total = 0
    entries = 0
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        for name in sorted(dirnames + filenames):
            entries += 1
            if entries > _MAX_FOLDER_ENTRIES:
                raise _fail(f"Adapter folder holds more than {_MAX_FOLDER_ENTRIES} entries.", "adapter_too_large")
            full = Path(dirpath) / name
            rel = full.relative_to(folder).as_posix()
            st = full.lstat()
            if stat.S_ISLNK(st.st_mode):
                # vLLM would follow it: it must not lead outside the adapter.
                try:
                    target = full.resolve(strict=True)
                except (OSError, RuntimeError):
                    raise _fail(f"Adapter file {rel!r} is a broken or looping symlink.", "unsafe_adapter_file") from None
                if not target.is_relative_to(folder):
                    raise _fail(f"Adapter file {rel!r} is a symlink pointing outside the adapter folder.", "unsafe_adapter_file")
                st = target.stat()
            if stat.S_ISDIR(st.st_mode):
                continue
            if Path(name).suffix.lower() in PICKLE_SUFFIXES:
                raise _fail(
                    f"Adapter file {rel!r} is in a pickle-based format, which can execute code when loaded; "
                    f"it is refused. Ship only {WEIGHTS_FILE} (remove {rel!r} from the folder).",
                    "pickle_weights_refused",
                )
            if not stat.S_ISREG(st.st_mode):
                raise _fail(f"Adapter entry {rel!r} is not a regular file.", "unsafe_adapter_file")
            files.append(rel)
            total += st.st_size
            if total > max_size_bytes:
                raise _fail(
                    f"Adapter folder is larger than the {max_size_bytes}-byte limit.", "adapter_too_large"
                )
    return sorted(files), total


def _read_config(folder: Path) -> dict[str, Any]:
    path = folder / CONFIG_FILE
    try:
        with path.open("rb") as fh:
            raw = fh.read(_MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise _fail(f"{CONFIG_FILE} cannot be read: {exc.strerror or exc}.", "invalid_adapter_config") from exc
    if len(raw) > _MAX_CONFIG_BYTES:
        raise _fail(f"{CONFIG_FILE} is larger than {_MAX_CONFIG_BYTES} bytes.", "invalid_adapter_config")
    try:
        config = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _fail(f"{CONFIG_FILE} is not valid JSON: {exc}.", "invalid_adapter_config") from exc
    if not isinstance(config, dict):
        raise _fail(f"{CONFIG_FILE} must hold a JSON object.", "invalid_adapter_config")
    return config


def _check_config_options(config: dict[str, Any]) -> None:
    """Refuse PEFT features that vLLM would reject or silently apply differently."""
    peft_type = config.get("peft_type")
    if peft_type != "LORA":
        raise _fail(f"peft_type is {peft_type!r}; only 'LORA' adapters are supported.", "invalid_adapter_config")

    def unsupported(option: str, why: str) -> AdapterValidationError:
        return _fail(f"Unsupported adapter option {option}: {why}", "unsupported_adapter_option")

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
    config: dict[str, Any], max_rank: int, clock: _RegexClock
) -> tuple[dict[str, int], dict[str, float], list[tuple[str, regex.Pattern[str]]]]:
    """Validate rank_pattern / alpha_pattern. Keys are PEFT regexes matched against module names."""
    compiled: list[tuple[str, regex.Pattern[str]]] = []
    result: list[dict] = []
    for field in ("rank_pattern", "alpha_pattern"):
        pattern = config.get(field) or {}
        if not isinstance(pattern, dict):
            raise _fail(f"{field} must be an object mapping module names to values.", "invalid_adapter_config")
        if len(pattern) > _MAX_PATTERN_KEYS:
            raise _fail(f"{field} has more than {_MAX_PATTERN_KEYS} entries.", "unsupported_adapter_option")
        for key, value in pattern.items():
            if not key or len(key) > 256:
                raise _fail(f"{field} key {key!r} is empty or too long.", "unsupported_adapter_option")
            if field == "rank_pattern":
                if not _is_int(value) or value < 1:
                    raise _fail(f"rank_pattern[{key!r}] must be an integer >= 1, got {value!r}.", "invalid_adapter_config")
                if value > max_rank:
                    raise _fail(
                        f"rank_pattern[{key!r}] is {value}, above the maximum LoRA rank {max_rank}.", "rank_too_large"
                    )
            elif not _is_number(value) or value <= 0:
                raise _fail(f"alpha_pattern[{key!r}] must be a positive number, got {value!r}.", "invalid_adapter_config")
        # Same rule as PEFT's get_pattern_key / vLLM's PEFTHelper: suffix at a '.' boundary, first
        # match wins. alpha keys are compiled only so a broken one is refused here, not in vLLM.
        keyed = [(key, clock.compile(rf"(.*\.)?({key})", f"{field} key")) for key in pattern]
        if field == "rank_pattern":
            compiled = keyed
        result.append(dict(pattern))
    return result[0], result[1], compiled


def _configured_targets(config: dict[str, Any], base: BaseModelShape, clock: _RegexClock) -> set[str]:
    """Apply PEFT's target_modules rule to the base model's module names; return short names hit."""
    targets = config.get("target_modules")
    names = base.module_names()
    if targets is None or targets == [] or targets == "":
        raise _fail("target_modules is missing from adapter_config.json.", "invalid_adapter_config")
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
            raise _fail("target_modules regex is too long.", "unsupported_adapter_option")
        compiled = clock.compile(targets, "target_modules")
        for full, short in names:
            if clock.fullmatch(compiled, full, "target_modules regex"):
                record(full, short)
        if not hit:
            raise _fail(
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
                raise _fail(
                    f"target_modules entry {target!r} is not a module of the base model "
                    f"(it has {', '.join(SUPPORTED_MODULES)}); the adapter was made for another architecture.",
                    "unknown_target_module",
                )
            for full, short in matched:
                record(full, short)
    else:
        raise _fail("target_modules must be a list of module names or a regex string.", "invalid_adapter_config")
    if unsupported_hits:
        raise _fail(
            f"target_modules includes {', '.join(sorted(unsupported_hits))}: LoRA on embeddings / lm_head "
            "is not supported.",
            "unsupported_adapter_option",
        )
    return {short for short in hit if short is not None}


def _corrupt(reason: str) -> AdapterValidationError:
    return _fail(f"{WEIGHTS_FILE} is corrupt or truncated: {reason}.", "corrupt_weights")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _corrupt(f"duplicate header key {key!r}")
        result[key] = value
    return result


def read_safetensors_header(path: Path) -> tuple[dict[str, dict[str, Any]], str, int]:
    """Parse and bounds-check a safetensors header; hash the file in the same pass.

    Returns (tensor name -> {"dtype", "shape"}, sha256 hex, file size). Tensor data is read only
    to hash it. Reading header and hash from one open file means both describe the same bytes.
    """
    digest = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            prefix = fh.read(8)
            if len(prefix) < 8:
                raise _corrupt(f"file is {size} bytes, shorter than the 8-byte header length")
            (header_len,) = struct.unpack("<Q", prefix)
            if header_len < 2 or header_len > _MAX_HEADER_BYTES or header_len > size - 8:
                raise _corrupt(f"header length {header_len} does not fit a {size}-byte file")
            header_bytes = fh.read(header_len)
            if len(header_bytes) != header_len:
                raise _corrupt("file ends inside the header")
            digest.update(prefix)
            digest.update(header_bytes)
            read = 8 + header_len
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
                read += len(chunk)
            if read != size:
                raise _corrupt("file changed while it was read")
    except OSError as exc:
        raise _fail(f"{WEIGHTS_FILE} cannot be read: {exc.strerror or exc}.", "corrupt_weights") from exc

    try:
        header = json.loads(header_bytes.decode("utf-8"), object_pairs_hook=_no_duplicate_keys)
    except AdapterValidationError:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _corrupt(f"header is not valid JSON ({exc})") from exc
    if not isinstance(header, dict):
        raise _corrupt("header is not a JSON object")
    metadata = header.pop("__metadata__", None)
    if metadata is not None and not (
        isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())
    ):
        raise _corrupt("__metadata__ must map strings to strings")

    data_len = size - 8 - header_len
    tensors: dict[str, dict[str, Any]] = {}
    spans: list[tuple[int, int, str]] = []
    for name, info in header.items():
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise _corrupt(f"tensor {name!r} entry must have exactly dtype, shape and data_offsets")
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if dtype not in _DTYPE_SIZES:
            raise _corrupt(f"tensor {name!r} has unknown or unsupported dtype {dtype!r}")
        if not isinstance(shape, list) or len(shape) > 8 or not all(_is_int(d) and d >= 0 for d in shape):
            raise _corrupt(f"tensor {name!r} has an invalid shape {shape!r}")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_int(o) for o in offsets)):
            raise _corrupt(f"tensor {name!r} has invalid data_offsets {offsets!r}")
        begin, end = offsets
        if not 0 <= begin <= end <= data_len:
            raise _corrupt(f"tensor {name!r} data [{begin}, {end}) lies outside the {data_len}-byte data section")
        if math.prod(shape) * _DTYPE_SIZES[dtype] != end - begin:
            raise _corrupt(f"tensor {name!r} shape {shape} of {dtype} does not match its {end - begin}-byte span")
        tensors[name] = {"dtype": dtype, "shape": shape}
        spans.append((begin, end, name))
    # The format requires tensors to tile the data section exactly: no gaps, overlaps or trailing bytes.
    position = 0
    for begin, end, name in sorted(spans):
        if begin != position:
            raise _corrupt(f"tensor {name!r} overlaps another tensor or leaves a gap in the data section")
        position = end
    if position != data_len:
        raise _corrupt(f"data section is {data_len} bytes but tensors cover {position}")
    return tensors, digest.hexdigest(), size


def _rank_for(module_path: str, r: int, rank_pattern: dict[str, int], compiled: list, clock: _RegexClock) -> int:
    for key, pattern in compiled:
        if clock.fullmatch(pattern, module_path, "rank_pattern key"):
            return rank_pattern[key]
    return r


def _check_tensors(
    tensors: dict[str, dict[str, Any]],
    base: BaseModelShape,
    targets: set[str],
    r: int,
    rank_pattern: dict[str, int],
    compiled_ranks: list,
    clock: _RegexClock,
) -> tuple[set[str], set[int], int]:
    """Compare every tensor with the base model. Returns (modules, layers, largest rank used)."""
    modules = base.modules
    pairs: dict[tuple[int, str], dict[str, list[int]]] = {}
    for name, info in tensors.items():
        match = _TENSOR_RE.fullmatch(name)
        if match is None:
            if any(part in name for part in UNSUPPORTED_MODULES) or "lora_embedding" in name:
                raise _fail(f"Tensor {name!r}: LoRA on embeddings / lm_head is not supported.", "unsupported_adapter_option")
            if "lora_magnitude_vector" in name:
                raise _fail(f"Tensor {name!r} is a DoRA magnitude; DoRA is not supported.", "unsupported_adapter_option")
            raise _fail(
                f"Unexpected tensor {name!r} in {WEIGHTS_FILE}; expected only "
                "'base_model.model.model.layers.<i>.<self_attn|mlp>.<module>.lora_<A|B>.weight'.",
                "unexpected_tensor",
            )
        layer, parent, module, ab = int(match["layer"]), match["parent"], match["module"], match["ab"]
        if module not in modules:
            raise _fail(
                f"Tensor {name!r} targets {module!r}, which the base model does not have "
                "(the adapter was made for another architecture).",
                "unknown_target_module",
            )
        if parent != base.parent_of(module):
            raise _fail(f"Unexpected tensor {name!r}: {module} lives under {base.parent_of(module)}.", "unexpected_tensor")
        if module not in targets:
            raise _fail(
                f"Tensor {name!r} is for {module!r}, which adapter_config.json's target_modules does not list.",
                "unknown_target_module",
            )
        if layer >= base.num_hidden_layers:
            raise _fail(
                f"Tensor {name!r} is for layer {layer} but the base model has {base.num_hidden_layers} layers: "
                "the adapter was trained for another base model.",
                "shape_mismatch",
            )
        if info["dtype"] not in _LORA_DTYPES:
            raise _fail(
                f"Tensor {name!r} has dtype {info['dtype']}; LoRA weights must be F16, BF16, F32 or F64.",
                "unsupported_adapter_option",
            )
        pairs.setdefault((layer, module), {})[ab] = info["shape"]

    if not pairs:
        raise _fail(f"{WEIGHTS_FILE} holds no LoRA weights.", "missing_lora_weights")
    largest = 0
    for (layer, module), shapes in sorted(pairs.items()):
        where = f"layers.{layer}.{base.parent_of(module)}.{module}"
        if set(shapes) != {"A", "B"}:
            missing = "lora_B" if "A" in shapes else "lora_A"
            raise _fail(f"{where} has no {missing} weight: every LoRA needs both A and B.", "missing_lora_weights")
        rank = _rank_for(f"model.{where}", r, rank_pattern, compiled_ranks, clock)
        in_features, out_features = modules[module]
        expected = {"A": [rank, in_features], "B": [out_features, rank]}
        for ab in ("A", "B"):
            if shapes[ab] != expected[ab]:
                raise _fail(
                    f"{where}.lora_{ab} has shape {shapes[ab]} but the base model needs {expected[ab]} "
                    f"(rank {rank}, {module} in_features {in_features}, out_features {out_features}): "
                    "the adapter was trained for a different base model or its config is wrong.",
                    "shape_mismatch",
                )
        largest = max(largest, rank)
    return {module for _, module in pairs}, {layer for layer, _ in pairs}, largest


def inspect_adapter(
    folder: Path,
    base: BaseModelShape,
    max_rank: int,
    max_size_bytes: int,
) -> AdapterInspection:
    """Validate a PEFT LoRA folder against `base`; raise AdapterValidationError naming the problem."""
    folder = Path(folder)
    try:
        folder = folder.resolve(strict=True)
    except FileNotFoundError:
        raise _fail(f"Adapter folder {str(folder)!r} does not exist.", "adapter_not_found", status=404) from None
    except (OSError, RuntimeError) as exc:
        raise _fail(f"Adapter folder cannot be resolved: {exc}.", "invalid_adapter_path") from exc
    if not folder.is_dir():
        raise _fail(f"Adapter path {str(folder)!r} is not a folder.", "invalid_adapter_path")

    # Cheap, file-opening-free checks first: pickles and size come before any parsing.
    files, total_size = _scan_folder(folder, max_size_bytes)
    for required in (CONFIG_FILE, WEIGHTS_FILE):
        if required not in files:
            raise _fail(
                f"Adapter folder has no {required}; a PEFT LoRA adapter needs {CONFIG_FILE} and {WEIGHTS_FILE}.",
                "missing_adapter_file",
            )

    config = _read_config(folder)
    _check_config_options(config)
    r = config.get("r")
    if not _is_int(r) or r < 1:
        raise _fail(f"LoRA rank r must be an integer >= 1, got {r!r}.", "invalid_adapter_config")
    if r > max_rank:
        raise _fail(f"LoRA rank r={r} is above the maximum LoRA rank {max_rank}.", "rank_too_large")
    alpha = config.get("lora_alpha")  # required: vLLM refuses a config without it
    if not _is_number(alpha) or alpha <= 0:
        raise _fail(f"lora_alpha must be a positive number, got {alpha!r}.", "invalid_adapter_config")
    declared_base = config.get("base_model_name_or_path")
    if declared_base is not None and not isinstance(declared_base, str):
        raise _fail("base_model_name_or_path must be a string or null.", "invalid_adapter_config")
    use_rslora = config.get("use_rslora", False)
    if not isinstance(use_rslora, bool):
        raise _fail("use_rslora must be true or false.", "invalid_adapter_config")

    clock = _RegexClock()
    rank_pattern, alpha_pattern, compiled_ranks = _check_patterns(config, max_rank, clock)
    targets = _configured_targets(config, base, clock)

    tensors, sha256, _ = read_safetensors_header(folder / WEIGHTS_FILE)
    modules, layers, largest = _check_tensors(tensors, base, targets, r, rank_pattern, compiled_ranks, clock)

    return AdapterInspection(
        rank=r,
        alpha=float(alpha),
        target_modules=sorted(modules),
        base_model_name_or_path=declared_base,
        use_rslora=use_rslora,
        rank_pattern=rank_pattern,
        alpha_pattern=alpha_pattern,
        max_rank=largest,
        num_layers=len(layers),
        num_tensors=len(tensors),
        weights_sha256=sha256,
        size_bytes=total_size,
        files=files,
    )


# --------------------------------------------------------------------------------------------
# Archive extraction
# --------------------------------------------------------------------------------------------


class _CappedReader(io.RawIOBase):
    """Decompressed-stream view that stops at `limit` bytes, whatever the tar headers claim.

    tarfile reads PAX / GNU long-name headers whole into memory, so a header claiming gigabytes
    must be cut off here rather than trusted.
    """

    def __init__(self, inner: IO[bytes], limit: int) -> None:
        self._inner = inner
        self._remaining = limit

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        want = self._remaining + 1 if size is None or size < 0 else min(size, self._remaining + 1)
        data = self._inner.read(want)
        self._remaining -= len(data)
        if self._remaining < 0:
            raise _ArchiveTooLarge
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class _ArchiveTooLarge(Exception):
    pass


def _member_parts(name: str) -> tuple[str, ...]:
    """Validate a member name; return its path components ('./' prefixes dropped)."""
    if not name or "\x00" in name or len(name) > 1024:
        raise _fail(f"Archive member name {name[:100]!r} is empty or invalid.", "unsafe_archive")
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        raise _fail(f"Archive member {name!r} has an absolute path.", "unsafe_archive")
    if "\\" in name:
        raise _fail(f"Archive member {name!r} contains a backslash.", "unsafe_archive")
    parts = tuple(p for p in PurePosixPath(name).parts if p != ".")
    if ".." in parts:
        raise _fail(f"Archive member {name!r} contains a '..' component.", "unsafe_archive")
    return parts


def safe_extract_tar_gz(
    data: bytes | IO[bytes],
    dest: Path,
    max_bytes: int,
    max_members: int = 64,
) -> Path:
    """Extract a .tar.gz into `dest` (absent or empty) and return the adapter folder inside it.

    Only regular files and folders are allowed; links, devices and FIFOs, absolute paths and '..'
    are refused. Sizes are counted from the decompressed stream itself. If the archive holds a
    single top-level folder, that folder is returned, otherwise `dest`. On any error, what was
    extracted is removed.
    """
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ValueError(f"extraction destination {dest} must be absent or an empty directory")
    created = not dest.exists()
    dest.mkdir(parents=True, exist_ok=True)
    raw = io.BytesIO(data) if isinstance(data, (bytes, bytearray, memoryview)) else data
    # Headers, padding and end blocks count too; allow a generous per-member allowance for them.
    stream_limit = max_bytes + (max_members + 4) * 4096 + 20480
    try:
        top_level = _extract(raw, dest, max_bytes, max_members, stream_limit)
    except BaseException:
        if created:
            shutil.rmtree(dest, ignore_errors=True)
        else:
            for child in dest.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
        raise
    if len(top_level) == 1:
        (only,) = top_level
        if (dest / only).is_dir():
            return dest / only
    return dest


def _extract(raw: IO[bytes], dest: Path, max_bytes: int, max_members: int, stream_limit: int) -> set[str]:
    total = 0
    members = 0
    top_level: set[str] = set()
    too_large = _fail(
        f"Archive unpacks to more than the {max_bytes}-byte limit.", "adapter_too_large"
    )
    try:
        gz = gzip.GzipFile(fileobj=raw, mode="rb")
        with tarfile.open(fileobj=_CappedReader(gz, stream_limit), mode="r|") as tar:
            for member in tar:
                members += 1
                if members > max_members:
                    raise _fail(f"Archive has more than {max_members} members.", "unsafe_archive")
                parts = _member_parts(member.name)
                if not parts:  # the "./" entry itself
                    if member.isdir():
                        continue
                    raise _fail(f"Archive member {member.name!r} has no name.", "unsafe_archive")
                # macOS tar adds AppleDouble metadata files; they are never part of an adapter.
                if parts[0] == "__MACOSX" or parts[-1].startswith("._"):
                    continue
                if member.issym() or member.islnk():
                    raise _fail(f"Archive member {member.name!r} is a link; links are refused.", "unsafe_archive")
                if not (member.isreg() or member.isdir()) or member.issparse():
                    raise _fail(
                        f"Archive member {member.name!r} is not a regular file or folder "
                        "(devices, FIFOs and sparse files are refused).",
                        "unsafe_archive",
                    )
                target = dest.joinpath(*parts)
                top_level.add(parts[0])
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                if total + member.size > max_bytes:  # early refusal; the real count is below
                    raise too_large
                target.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                assert source is not None  # regular file
                # O_EXCL: a repeated member name must not overwrite (or be redirected through) an earlier one.
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
                with os.fdopen(fd, "wb") as out:
                    while chunk := source.read(1 << 20):
                        total += len(chunk)
                        if total > max_bytes:
                            raise too_large
                        out.write(chunk)
    except AdapterValidationError:
        raise
    except _ArchiveTooLarge:
        raise too_large from None
    except (FileExistsError, NotADirectoryError, IsADirectoryError) as exc:
        raise _fail(
            f"Archive holds {Path(exc.filename or '?').name!r} twice or as both a file and a folder.", "unsafe_archive"
        ) from exc
    except (tarfile.TarError, gzip.BadGzipFile, EOFError, zlib.error, UnicodeError) as exc:
        raise _fail(f"Archive is not a valid .tar.gz: {exc}.", "corrupt_archive") from exc
    except OSError as exc:
        if exc.errno is not None:  # a real I/O failure (disk full, ...), not a bad archive
            raise
        raise _fail(f"Archive is not a valid .tar.gz: {exc}.", "corrupt_archive") from exc
    if not top_level:
        raise _fail("Archive contains no files.", "corrupt_archive")
    return top_level
