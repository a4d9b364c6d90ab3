"""Check `adapter_model.safetensors`: a well-formed file whose tensor names, dtypes and shapes are
exactly the LoRA A/B pairs the base model and the config call for.

The `safetensors` library reads the header (names, dtypes, shapes; bounds, offsets and sizes
validated) without loading the weights: `safe_open` memory-maps the file and touches only the
header. The file is read once more, in chunks, only to hash it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open

from service.adapters.validation.base_shape import UNSUPPORTED_MODULES, BaseModelShape
from service.adapters.validation.errors import AdapterValidationError, fail
from service.adapters.validation.folder import WEIGHTS_FILE
from service.adapters.validation.peft_config import LoraConfig

_LORA_DTYPES = frozenset({"F16", "BF16", "F32", "F64"})

_TENSOR_RE = re.compile(
    r"base_model\.model\.model\.layers\.(?P<layer>0|[1-9][0-9]{0,5})\.(?P<parent>[A-Za-z0-9_]+)"
    r"\.(?P<module>[A-Za-z0-9_]+)\.lora_(?P<ab>[AB])\.weight"
)
_ENTRY_KEYS = frozenset({"dtype", "shape", "data_offsets"})


def _corrupt(reason: str) -> AdapterValidationError:
    return fail(f"{WEIGHTS_FILE} is corrupt or truncated: {reason}.", "corrupt_weights")


def read_safetensors_header(path: Path) -> tuple[dict[str, dict[str, Any]], str, int]:
    """Read a safetensors file's tensor list and hash the file.

    Returns (tensor name -> {"dtype", "shape"}, sha256 hex, file size). Raises
    AdapterValidationError(code="corrupt_weights") for anything malformed or unreadable.
    """
    try:
        with safe_open(str(path), framework="numpy") as f:  # dtype/shape need no numpy dtype: BF16 works
            tensors = {}
            for name in f.keys():
                view = f.get_slice(name)
                tensors[name] = {"dtype": view.get_dtype(), "shape": list(view.get_shape())}
    except SafetensorError as exc:  # bad length, JSON, dtype, shape, offsets, coverage, metadata
        raise _corrupt(str(exc)) from exc
    except OSError as exc:  # unreadable, not a file
        raise fail(f"{WEIGHTS_FILE} cannot be read: {exc.strerror or exc}.", "corrupt_weights") from exc
    header_bytes, sha256, size = _hash_file(path)
    _refuse_ambiguous_header(header_bytes, tensors, size)
    return tensors, sha256, size


def _hash_file(path: Path) -> tuple[bytes, str, int]:
    """Hash the whole file in one pass; also return its header bytes and size."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            prefix = fh.read(8)
            header_len = struct.unpack("<Q", prefix)[0] if len(prefix) == 8 else 0
            if not 2 <= header_len <= size - 8:  # the library accepted it: the file changed since
                raise _corrupt("file changed while it was read")
            header_bytes = fh.read(header_len)
            digest.update(prefix)
            digest.update(header_bytes)
            read = 8 + len(header_bytes)
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
                read += len(chunk)
            if read != size:
                raise _corrupt("file changed while it was read")
    except OSError as exc:
        raise fail(f"{WEIGHTS_FILE} cannot be read: {exc.strerror or exc}.", "corrupt_weights") from exc
    return header_bytes, digest.hexdigest(), size


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _corrupt(f"duplicate header key {key!r}")
        result[key] = value
    return result


def _refuse_ambiguous_header(header_bytes: bytes, tensors: dict[str, dict[str, Any]], size: int) -> None:
    """The part of the old hand-written parser the library cannot replace.

    The library's JSON reader (serde) lets the last of duplicate keys win and ignores unknown
    fields in a tensor entry, so a file it accepts can mean something else to another reader;
    such headers are refused here. Parsing the hashed header bytes again also ties the hash to
    what the library read: if the file changed in between, the two views differ.
    """
    try:
        header = json.loads(header_bytes.decode("utf-8"), object_pairs_hook=_no_duplicate_keys)
    except AdapterValidationError:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _corrupt(f"header is not valid JSON ({exc})") from exc
    if not isinstance(header, dict):
        raise _corrupt("header is not a JSON object")
    header.pop("__metadata__", None)
    data_end = 0
    for name, info in header.items():
        if not isinstance(info, dict) or set(info) != _ENTRY_KEYS:
            raise _corrupt(f"tensor {name!r} entry must have exactly dtype, shape and data_offsets")
        offsets = info["data_offsets"]
        if isinstance(offsets, list) and len(offsets) == 2 and isinstance(offsets[1], int):
            data_end = max(data_end, offsets[1])
    seen = {name: {"dtype": info["dtype"], "shape": info["shape"]} for name, info in header.items()}
    if seen != tensors or 8 + len(header_bytes) + data_end != size:
        raise _corrupt("file changed while it was read")


def check_tensors(
    tensors: dict[str, dict[str, Any]], base: BaseModelShape, config: LoraConfig
) -> tuple[set[str], set[int], int]:
    """Compare every tensor with the base model. Returns (modules, layers, largest rank used)."""
    modules = base.modules
    pairs: dict[tuple[int, str], dict[str, list[int]]] = {}
    for name, info in tensors.items():
        match = _TENSOR_RE.fullmatch(name)
        if match is None:
            if any(part in name for part in UNSUPPORTED_MODULES) or "lora_embedding" in name:
                raise fail(f"Tensor {name!r}: LoRA on embeddings / lm_head is not supported.", "unsupported_adapter_option")
            if "lora_magnitude_vector" in name:
                raise fail(f"Tensor {name!r} is a DoRA magnitude; DoRA is not supported.", "unsupported_adapter_option")
            raise fail(
                f"Unexpected tensor {name!r} in {WEIGHTS_FILE}; expected only "
                "'base_model.model.model.layers.<i>.<self_attn|mlp>.<module>.lora_<A|B>.weight'.",
                "unexpected_tensor",
            )
        layer, parent, module, ab = int(match["layer"]), match["parent"], match["module"], match["ab"]
        if module not in modules:
            raise fail(
                f"Tensor {name!r} targets {module!r}, which the base model does not have "
                "(the adapter was made for another architecture).",
                "unknown_target_module",
            )
        if parent != base.parent_of(module):
            raise fail(f"Unexpected tensor {name!r}: {module} lives under {base.parent_of(module)}.", "unexpected_tensor")
        if module not in config.targets:
            raise fail(
                f"Tensor {name!r} is for {module!r}, which adapter_config.json's target_modules does not list.",
                "unknown_target_module",
            )
        if layer >= base.num_hidden_layers:
            raise fail(
                f"Tensor {name!r} is for layer {layer} but the base model has {base.num_hidden_layers} layers: "
                "the adapter was trained for another base model.",
                "shape_mismatch",
            )
        if info["dtype"] not in _LORA_DTYPES:
            raise fail(
                f"Tensor {name!r} has dtype {info['dtype']}; LoRA weights must be F16, BF16, F32 or F64.",
                "unsupported_adapter_option",
            )
        pairs.setdefault((layer, module), {})[ab] = info["shape"]

    if not pairs:
        raise fail(f"{WEIGHTS_FILE} holds no LoRA weights.", "missing_lora_weights")
    largest = 0
    for (layer, module), shapes in sorted(pairs.items()):
        where = f"layers.{layer}.{base.parent_of(module)}.{module}"
        if set(shapes) != {"A", "B"}:
            missing = "lora_B" if "A" in shapes else "lora_A"
            raise fail(f"{where} has no {missing} weight: every LoRA needs both A and B.", "missing_lora_weights")
        rank = config.rank_for(f"model.{where}")
        in_features, out_features = modules[module]
        expected = {"A": [rank, in_features], "B": [out_features, rank]}
        for ab in ("A", "B"):
            if shapes[ab] != expected[ab]:
                raise fail(
                    f"{where}.lora_{ab} has shape {shapes[ab]} but the base model needs {expected[ab]} "
                    f"(rank {rank}, {module} in_features {in_features}, out_features {out_features}): "
                    "the adapter was trained for a different base model or its config is wrong.",
                    "shape_mismatch",
                )
        largest = max(largest, rank)
    return {module for _, module in pairs}, {layer for layer, _ in pairs}, largest
