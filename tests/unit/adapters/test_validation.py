"""Unit tests for service.adapters.validation: real PEFT adapters plus hand-made broken ones.

Most tests use a tiny random Llama (2 layers, hidden 64) built in a temp dir, so they do not need
the model cache and stay fast; one test uses the real SmolLM2 folder when it is present.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import struct
import tarfile
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file

from service.adapters.validation import (
    NAME_PATTERN,
    AdapterInspection,
    AdapterValidationError,
    BaseModelShape,
    inspect_adapter,
    read_safetensors_header,
    resolve_source_path,
    safe_extract_tar_gz,
    validate_adapter_name,
)

REAL_BASE = Path("/root/.cache/loragate/models/SmolLM2-135M-Instruct")
SMOLLM2_CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 576,
    "intermediate_size": 1536,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
    "num_hidden_layers": 30,
    "vocab_size": 49152,
    "tie_word_embeddings": True,
}  # head_dim deliberately absent: derived as 576 / 9 = 64
TINY = {"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4, "num_key_value_heads": 2}
MAX_RANK = 64
MAX_SIZE = 50 << 20
PREFIX = "base_model.model.model.layers"


# --------------------------------------------------------------------------------------------
# Builders
# --------------------------------------------------------------------------------------------


def tiny_llama(num_layers: int = 2, **overrides: Any):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    dims = {**TINY, **overrides}
    config = LlamaConfig(num_hidden_layers=num_layers, vocab_size=256, tie_word_embeddings=True, **dims)
    return LlamaForCausalLM(config)


def make_peft_adapter(dest: Path, model=None, **lora: Any) -> Path:
    from peft import LoraConfig, get_peft_model

    model = model if model is not None else tiny_llama()
    options = {"r": 8, "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"], "init_lora_weights": False, **lora}
    peft_model = get_peft_model(model, LoraConfig(**options))
    peft_model.save_pretrained(dest)
    return dest


def write_synthetic_adapter(dest: Path, shapes: dict[str, list[int]], **config: Any) -> Path:
    """An adapter folder with zero tensors of the given shapes and a PEFT-like config."""
    dest.mkdir(parents=True, exist_ok=True)
    save_file({name: torch.zeros(shape) for name, shape in shapes.items()}, str(dest / "adapter_model.safetensors"))
    full_config = {
        "peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"],
        "bias": "none", "base_model_name_or_path": None, **config,
    }
    (dest / "adapter_config.json").write_text(json.dumps(full_config))
    return dest


def lora_shapes(layers: int, modules: dict[str, tuple[int, int]], r: int = 8) -> dict[str, list[int]]:
    """Correct tensor names/shapes for `modules` = {name: (in, out)} over `layers` layers."""
    shapes = {}
    for i in range(layers):
        for module, (fin, fout) in modules.items():
            parent = "self_attn" if module in ("q_proj", "k_proj", "v_proj", "o_proj") else "mlp"
            shapes[f"{PREFIX}.{i}.{parent}.{module}.lora_A.weight"] = [r, fin]
            shapes[f"{PREFIX}.{i}.{parent}.{module}.lora_B.weight"] = [fout, r]
    return shapes


def edit_config(folder: Path, **changes: Any) -> None:
    path = folder / "adapter_config.json"
    config = json.loads(path.read_text())
    for key, value in changes.items():
        if value is _DELETE:
            config.pop(key, None)
        else:
            config[key] = value
    path.write_text(json.dumps(config))


_DELETE = object()


def rewrite_header(path: Path, mutate) -> None:
    """Rewrite a safetensors file's JSON header through `mutate(header) -> header` (data kept)."""
    blob = path.read_bytes()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + n])
    new = json.dumps(mutate(header)).encode()
    path.write_bytes(struct.pack("<Q", len(new)) + new + blob[8 + n :])


def targz(entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        for info, payload in entries:
            tar.addfile(info, io.BytesIO(payload) if payload is not None else None)
    return buf.getvalue()


def file_entry(name: str, payload: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    return info, payload


def special_entry(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info, None


def folder_to_targz(folder: Path, arcname: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(folder, arcname=arcname)
    return buf.getvalue()


def expect(code: str, func, *args, status: int = 400, contains: str | None = None, **kwargs) -> AdapterValidationError:
    with pytest.raises(AdapterValidationError) as info:
        func(*args, **kwargs)
    err = info.value
    assert err.code == code, f"expected {code}, got {err.code}: {err.message}"
    assert err.status == status
    assert err.message
    if contains:
        assert contains in err.message, err.message
    return err


# --------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_base_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-base")
    tiny_llama().config.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def base(tiny_base_dir) -> BaseModelShape:
    return BaseModelShape.from_model_dir(tiny_base_dir)


@pytest.fixture(scope="session")
def peft_template(tmp_path_factory) -> Path:
    return make_peft_adapter(tmp_path_factory.mktemp("tpl") / "adapter")


@pytest.fixture()
def adapter(peft_template, tmp_path) -> Path:
    """A fresh, valid, PEFT-made adapter each test may mutate."""
    return Path(shutil.copytree(peft_template, tmp_path / "adapter"))


def inspect(folder: Path, base: BaseModelShape, max_rank: int = MAX_RANK, max_size: int = MAX_SIZE) -> AdapterInspection:
    return inspect_adapter(folder, base, max_rank=max_rank, max_size_bytes=max_size)


# --------------------------------------------------------------------------------------------
# Names and paths
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a", "sql-expert", "v1.2_x", "0" * 64])
def test_valid_names(name):
    validate_adapter_name(name, reserved={"SmolLM2-135M-Instruct"})


@pytest.mark.parametrize("name", ["", "A", "-x", ".x", "..", "a/b", "a b", "a" * 65, "abc\n", "é", 5])
def test_invalid_names(name):
    expect("invalid_adapter_name", validate_adapter_name, name, set())


@pytest.mark.parametrize("name", ["smollm2-135m-instruct", "health", "v1"])
def test_reserved_names_are_refused(name):
    err = expect("invalid_adapter_name", validate_adapter_name, name, {"SmolLM2-135M-Instruct", "health", "v1"})
    assert err.param == "name" and "reserved" in err.message


def test_name_pattern_constant():
    assert NAME_PATTERN == r"^[a-z0-9][a-z0-9._-]{0,63}$"


@pytest.fixture()
def roots(tmp_path) -> tuple[Path, Path]:
    root = tmp_path / "adapters"
    (root / "good").mkdir(parents=True)
    outside = tmp_path / "secret"
    outside.mkdir()
    (outside / "data").write_text("x")
    return root, outside


def test_resolve_inside_root_absolute_and_relative(roots):
    root, _ = roots
    assert resolve_source_path(str(root / "good"), [root]) == (root / "good").resolve()
    assert resolve_source_path("good", [root]) == (root / "good").resolve()
    # A second root is searched for relative paths too.
    other = root.parent / "other"
    (other / "x").mkdir(parents=True)
    assert resolve_source_path("x", [root, other]) == (other / "x").resolve()


def test_resolve_refuses_dotdot_even_if_it_lands_inside(roots):
    root, _ = roots
    expect("adapter_path_outside_roots", resolve_source_path, "../secret", [root])
    expect("adapter_path_outside_roots", resolve_source_path, f"{root}/good/../good", [root])


def test_resolve_refuses_absolute_path_elsewhere(roots):
    root, outside = roots
    err = expect("adapter_path_outside_roots", resolve_source_path, str(outside), [root])
    assert err.param == "path"
    expect("adapter_path_outside_roots", resolve_source_path, "/etc", [root])


def test_resolve_refuses_symlink_escape(roots):
    root, outside = roots
    (root / "escape").symlink_to(outside, target_is_directory=True)
    expect("adapter_path_outside_roots", resolve_source_path, "escape", [root])
    expect("adapter_path_outside_roots", resolve_source_path, str(root / "escape"), [root])


def test_resolve_allows_symlink_within_root(roots):
    root, _ = roots
    (root / "alias").symlink_to(root / "good", target_is_directory=True)
    assert resolve_source_path("alias", [root]) == (root / "good").resolve()


def test_resolve_missing_inside_is_404_missing_outside_is_400(roots):
    root, outside = roots
    expect("adapter_not_found", resolve_source_path, "nope", [root], status=404)
    # Outside the roots the answer does not reveal whether the path exists.
    expect("adapter_path_outside_roots", resolve_source_path, str(outside / "nope"), [root])


@pytest.mark.parametrize("bad", ["", "   ", "a\x00b"])
def test_resolve_refuses_malformed_paths(roots, bad):
    root, _ = roots
    expect("invalid_adapter_path", resolve_source_path, bad, [root])


def test_resolve_with_no_roots_refuses_everything(roots):
    root, _ = roots
    expect("adapter_path_outside_roots", resolve_source_path, str(root / "good"), [])


# --------------------------------------------------------------------------------------------
# Base model shape
# --------------------------------------------------------------------------------------------


def test_base_shape_from_smollm2_like_config_without_head_dim(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(SMOLLM2_CONFIG))
    shape = BaseModelShape.from_model_dir(tmp_path)
    assert shape.head_dim == 64 and shape.num_hidden_layers == 30 and shape.tie_word_embeddings
    assert shape.modules == {
        "q_proj": (576, 576),
        "k_proj": (576, 192),
        "v_proj": (576, 192),
        "o_proj": (576, 576),
        "gate_proj": (576, 1536),
        "up_proj": (576, 1536),
        "down_proj": (1536, 576),
    }


def test_base_shape_tiny(base):
    assert base.num_hidden_layers == 2 and base.head_dim == 16
    assert base.modules["v_proj"] == (64, 32)


@pytest.mark.skipif(not (REAL_BASE / "config.json").exists(), reason="model cache not prepared")
def test_base_shape_real_smollm2():
    shape = BaseModelShape.from_model_dir(REAL_BASE)
    assert (shape.hidden_size, shape.intermediate_size, shape.head_dim, shape.num_hidden_layers) == (576, 1536, 64, 30)


def test_base_shape_bad_config(tmp_path):
    with pytest.raises(ValueError):
        BaseModelShape.from_model_dir(tmp_path)  # no config.json
    (tmp_path / "config.json").write_text(json.dumps({"hidden_size": 64}))
    with pytest.raises(ValueError, match="intermediate_size|num_attention_heads"):
        BaseModelShape.from_model_dir(tmp_path)


# --------------------------------------------------------------------------------------------
# Happy paths
# --------------------------------------------------------------------------------------------


def test_peft_adapter_is_accepted(adapter, base):
    result = inspect(adapter, base)
    assert result.rank == 8 and result.alpha == 16.0
    assert result.target_modules == ["q_proj", "v_proj"]
    assert result.base_model_name_or_path is None
    assert result.max_rank == 8 and result.num_layers == 2 and result.num_tensors == 8
    assert len(result.weights_sha256) == 64
    assert "adapter_config.json" in result.files and "adapter_model.safetensors" in result.files
    assert result.size_bytes == sum((adapter / f).stat().st_size for f in result.files)
    # Hash is of the weights file, byte for byte.
    import hashlib

    assert result.weights_sha256 == hashlib.sha256((adapter / "adapter_model.safetensors").read_bytes()).hexdigest()


def test_all_modules_rslora_and_rank_pattern(tmp_path, base):
    folder = make_peft_adapter(
        tmp_path / "a",
        target_modules="all-linear",
        use_rslora=True,
        rank_pattern={"v_proj": 4, "model.layers.1.mlp.down_proj": 2},
        alpha_pattern={"q_proj": 32},
    )
    result = inspect(folder, base)
    assert result.target_modules == sorted(["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    assert result.use_rslora and result.rank_pattern == {"v_proj": 4, "model.layers.1.mlp.down_proj": 2}
    assert result.max_rank == 8 and result.num_tensors == 2 * 7 * 2


def test_regex_target_modules(tmp_path, base):
    folder = make_peft_adapter(tmp_path / "a", target_modules=r".*\.(q_proj|o_proj)")
    assert inspect(folder, base).target_modules == ["o_proj", "q_proj"]


def test_bf16_adapter_and_declared_base(tmp_path, base):
    folder = make_peft_adapter(tmp_path / "a", model=tiny_llama().to(torch.bfloat16))
    edit_config(folder, base_model_name_or_path="HuggingFaceTB/SmolLM2-135M-Instruct")
    assert inspect(folder, base).base_model_name_or_path == "HuggingFaceTB/SmolLM2-135M-Instruct"


def test_extra_harmless_files_and_symlink_inside_folder(adapter, base):
    (adapter / "notes").mkdir()
    (adapter / "notes" / "train.log").write_text("ok")
    (adapter / "README-link.md").symlink_to(adapter / "README.md")
    files = inspect(adapter, base).files
    assert "notes/train.log" in files and "README-link.md" in files


@pytest.mark.skipif(not (REAL_BASE / "config.json").exists(), reason="model cache not prepared")
def test_real_smollm2_adapter(tmp_path):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(REAL_BASE, dtype=torch.bfloat16)
    folder = make_peft_adapter(tmp_path / "smol", model=model)
    result = inspect(folder, BaseModelShape.from_model_dir(REAL_BASE))
    assert result.target_modules == ["q_proj", "v_proj"] and result.num_layers == 30
    assert result.num_tensors == 30 * 2 * 2


# --------------------------------------------------------------------------------------------
# Folder-level refusals
# --------------------------------------------------------------------------------------------


def test_missing_folder_is_404(tmp_path, base):
    expect("adapter_not_found", inspect, tmp_path / "nope", base, status=404)


def test_file_instead_of_folder(tmp_path, base):
    (tmp_path / "f").write_text("x")
    expect("invalid_adapter_path", inspect, tmp_path / "f", base)


@pytest.mark.parametrize("missing", ["adapter_config.json", "adapter_model.safetensors"])
def test_missing_required_file(adapter, base, missing):
    (adapter / missing).unlink()
    expect("missing_adapter_file", inspect, adapter, base, contains=missing)


@pytest.mark.parametrize("name", ["adapter_model.bin", "training_args.bin", "x.pt", "sub/w.PTH", "a.pkl", "m.ckpt"])
def test_pickle_weights_refused_and_never_loaded(adapter, base, tmp_path, name):
    marker = tmp_path / "unpickled"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    target = adapter / name
    target.parent.mkdir(exist_ok=True)
    target.write_bytes(pickle.dumps(Evil()))
    expect("pickle_weights_refused", inspect, adapter, base, contains=Path(name).name)
    assert not marker.exists()


def test_pickle_refused_even_without_safetensors(adapter, base):
    (adapter / "adapter_model.safetensors").rename(adapter / "adapter_model.bin")
    expect("pickle_weights_refused", inspect, adapter, base)


def test_symlink_leaving_adapter_folder_refused(adapter, base, tmp_path):
    secret = tmp_path / "secret.safetensors"
    shutil.move(adapter / "adapter_model.safetensors", secret)
    (adapter / "adapter_model.safetensors").symlink_to(secret)
    expect("unsafe_adapter_file", inspect, adapter, base, contains="outside")


def test_fifo_in_folder_refused(adapter, base):
    os.mkfifo(adapter / "pipe")
    expect("unsafe_adapter_file", inspect, adapter, base)


def test_adapter_too_large(adapter, base):
    size = sum(p.stat().st_size for p in adapter.iterdir())
    expect("adapter_too_large", inspect, adapter, base, max_size=size - 1)
    assert inspect(adapter, base, max_size=size).size_bytes == size


# --------------------------------------------------------------------------------------------
# Config refusals
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("content", ["", "{not json", "[1, 2]", '"LORA"', "\xff\xfe"])
def test_config_not_a_json_object(adapter, base, content):
    (adapter / "adapter_config.json").write_bytes(content.encode("latin-1"))
    expect("invalid_adapter_config", inspect, adapter, base, contains="adapter_config.json")


_CONFIG_CASES = [
    ({"peft_type": "IA3"}, "invalid_adapter_config", "peft_type"),
    ({"peft_type": _DELETE}, "invalid_adapter_config", "peft_type"),
    ({"use_dora": True}, "unsupported_adapter_option", "use_dora"),
    ({"modules_to_save": ["lm_head"]}, "unsupported_adapter_option", "modules_to_save"),
    ({"bias": "all"}, "unsupported_adapter_option", "bias"),
    ({"bias": "lora_only"}, "unsupported_adapter_option", "bias"),
    ({"lora_bias": True}, "unsupported_adapter_option", "lora_bias"),
    ({"layers_to_transform": [0]}, "unsupported_adapter_option", "layers_to_transform"),
    ({"layer_replication": [[0, 2], [0, 2]]}, "unsupported_adapter_option", "layer_replication"),
    ({"init_lora_weights": "pissa"}, "unsupported_adapter_option", "init_lora_weights"),
    ({"target_parameters": ["mlp.experts.gate_up_proj"]}, "unsupported_adapter_option", "target_parameters"),
    ({"target_modules": _DELETE}, "invalid_adapter_config", "target_modules"),
    ({"target_modules": []}, "invalid_adapter_config", "target_modules"),
    ({"target_modules": 7}, "invalid_adapter_config", "target_modules"),
    ({"target_modules": r".*\.c_attn"}, "unknown_target_module", "matches none"),
    ({"target_modules": "(unclosed"}, "invalid_adapter_config", "regular expression"),
    ({"target_modules": ["q_proj", "c_attn"]}, "unknown_target_module", "c_attn"),
    ({"target_modules": ["q_proj", "v_proj", "embed_tokens"]}, "unsupported_adapter_option", "embed_tokens"),
    ({"target_modules": ["q_proj", "v_proj", "lm_head"]}, "unsupported_adapter_option", "lm_head"),
    ({"target_modules": r".*(q_proj|v_proj|lm_head)"}, "unsupported_adapter_option", "lm_head"),
    ({"r": 0}, "invalid_adapter_config", "rank"),
    ({"r": "8"}, "invalid_adapter_config", "rank"),
    ({"r": True}, "invalid_adapter_config", "rank"),
    ({"r": 8.0}, "invalid_adapter_config", "rank"),
    ({"r": _DELETE}, "invalid_adapter_config", "rank"),
    ({"r": 128}, "rank_too_large", "128"),
    ({"lora_alpha": "16"}, "invalid_adapter_config", "lora_alpha"),
    ({"lora_alpha": None}, "invalid_adapter_config", "lora_alpha"),
    ({"lora_alpha": 0}, "invalid_adapter_config", "lora_alpha"),
    ({"lora_alpha": _DELETE}, "invalid_adapter_config", "lora_alpha"),
    ({"rank_pattern": {"v_proj": 128}}, "rank_too_large", "rank_pattern"),
    ({"rank_pattern": {"v_proj": 0}}, "invalid_adapter_config", "rank_pattern"),
    ({"rank_pattern": {"(": 4}}, "invalid_adapter_config", "regular expression"),
    ({"rank_pattern": ["v_proj"]}, "invalid_adapter_config", "rank_pattern"),
    ({"alpha_pattern": {"v_proj": "x"}}, "invalid_adapter_config", "alpha_pattern"),
    ({"base_model_name_or_path": 3}, "invalid_adapter_config", "base_model_name_or_path"),
]


@pytest.mark.parametrize(("changes", "code", "mentions"), _CONFIG_CASES, ids=[str(c[0]) for c in _CONFIG_CASES])
def test_config_refusals(adapter, base, changes, code, mentions):
    edit_config(adapter, **changes)
    expect(code, inspect, adapter, base, contains=mentions)


def test_rslora_and_float_alpha_are_allowed(adapter, base):
    edit_config(adapter, use_rslora=True, lora_alpha=12.5)
    result = inspect(adapter, base)
    assert result.use_rslora and result.alpha == 12.5


def test_config_lists_fewer_targets_than_weights(adapter, base):
    # The weights hold v_proj but the config says only q_proj: weights are not trusted blindly.
    edit_config(adapter, target_modules=["q_proj"])
    expect("unknown_target_module", inspect, adapter, base, contains="v_proj")


# --------------------------------------------------------------------------------------------
# Weight/shape refusals (the base-model mismatch checks)
# --------------------------------------------------------------------------------------------


def test_adapter_for_hidden_768_is_caught_even_if_config_claims_right_base(tmp_path):
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "config.json").write_text(json.dumps(SMOLLM2_CONFIG))
    smol = BaseModelShape.from_model_dir(tmp_path / "base")
    folder = write_synthetic_adapter(
        tmp_path / "a",
        lora_shapes(30, {"q_proj": (768, 768), "v_proj": (768, 768)}),
        base_model_name_or_path="HuggingFaceTB/SmolLM2-135M-Instruct",
    )
    err = expect("shape_mismatch", inspect, folder, smol, contains="[8, 576]")
    assert "q_proj" in err.message
    # The same tensors with SmolLM2's shapes pass.
    ok = write_synthetic_adapter(tmp_path / "ok", lora_shapes(30, {"q_proj": (576, 576), "v_proj": (576, 192)}))
    assert inspect(ok, smol).num_layers == 30


def test_peft_adapter_from_another_base_is_caught(tmp_path, base):
    folder = make_peft_adapter(tmp_path / "a", model=tiny_llama(hidden_size=96, num_attention_heads=4, num_key_value_heads=2))
    expect("shape_mismatch", inspect, folder, base)


def test_peft_adapter_from_deeper_base_is_caught(tmp_path, base):
    folder = make_peft_adapter(tmp_path / "a", model=tiny_llama(num_layers=3))
    expect("shape_mismatch", inspect, folder, base, contains="layer 2")


def test_gqa_mismatch_is_caught(tmp_path, base):
    # Same hidden size, different number of KV heads: only v_proj's lora_B differs.
    folder = make_peft_adapter(tmp_path / "a", model=tiny_llama(num_key_value_heads=4))
    expect("shape_mismatch", inspect, folder, base, contains="v_proj.lora_B")


def test_rank_pattern_disagreeing_with_tensors(adapter, base):
    edit_config(adapter, rank_pattern={"v_proj": 4})
    expect("shape_mismatch", inspect, adapter, base, contains="rank 4")


def test_config_rank_disagreeing_with_tensors(adapter, base):
    edit_config(adapter, r=16)
    expect("shape_mismatch", inspect, adapter, base, contains="rank 16")


def test_unknown_tensor_name_refused(tmp_path, base):
    shapes = lora_shapes(2, {"q_proj": (64, 64)})
    shapes["base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight"] = [8, 64]
    folder = write_synthetic_adapter(tmp_path / "a", shapes, target_modules=["q_proj"])
    expect("unexpected_tensor", inspect, folder, base, contains="lora_A.default")


def test_module_under_wrong_parent_refused(tmp_path, base):
    shapes = {f"{PREFIX}.0.mlp.q_proj.lora_A.weight": [8, 64], f"{PREFIX}.0.mlp.q_proj.lora_B.weight": [64, 8]}
    folder = write_synthetic_adapter(tmp_path / "a", shapes, target_modules=["q_proj"])
    expect("unexpected_tensor", inspect, folder, base)


def test_tensor_for_module_base_lacks_refused(tmp_path, base):
    shapes = {f"{PREFIX}.0.attn.c_attn.lora_A.weight": [8, 64], f"{PREFIX}.0.attn.c_attn.lora_B.weight": [192, 8]}
    folder = write_synthetic_adapter(tmp_path / "a", shapes, target_modules=["q_proj"])
    expect("unknown_target_module", inspect, folder, base, contains="c_attn")


def test_embedding_lora_tensors_refused(tmp_path, base):
    shapes = lora_shapes(2, {"q_proj": (64, 64)})
    shapes["base_model.model.model.embed_tokens.lora_embedding_A"] = [8, 256]
    folder = write_synthetic_adapter(tmp_path / "a", shapes, target_modules=["q_proj"])
    expect("unsupported_adapter_option", inspect, folder, base)


def test_dora_magnitude_tensor_refused(tmp_path, base):
    shapes = lora_shapes(1, {"q_proj": (64, 64)})
    shapes[f"{PREFIX}.0.self_attn.q_proj.lora_magnitude_vector"] = [64]
    folder = write_synthetic_adapter(tmp_path / "a", shapes, target_modules=["q_proj"])
    expect("unsupported_adapter_option", inspect, folder, base, contains="DoRA")


def test_no_lora_tensors(tmp_path, base):
    folder = write_synthetic_adapter(tmp_path / "a", {})
    expect("missing_lora_weights", inspect, folder, base)


def test_unpaired_lora_tensor(tmp_path, base):
    shapes = lora_shapes(2, {"q_proj": (64, 64)})
    del shapes[f"{PREFIX}.1.self_attn.q_proj.lora_B.weight"]
    folder = write_synthetic_adapter(tmp_path / "a", shapes, target_modules=["q_proj"])
    expect("missing_lora_weights", inspect, folder, base, contains="lora_B")


def test_integer_lora_tensor_refused(tmp_path, base):
    folder = tmp_path / "a"
    write_synthetic_adapter(folder, {}, target_modules=["q_proj"])
    save_file(
        {
            f"{PREFIX}.0.self_attn.q_proj.lora_A.weight": torch.zeros(8, 64, dtype=torch.int32),
            f"{PREFIX}.0.self_attn.q_proj.lora_B.weight": torch.zeros(64, 8, dtype=torch.int32),
        },
        str(folder / "adapter_model.safetensors"),
    )
    expect("unsupported_adapter_option", inspect, folder, base, contains="dtype")


# --------------------------------------------------------------------------------------------
# Corrupt safetensors
# --------------------------------------------------------------------------------------------


def _weights(folder: Path) -> Path:
    return folder / "adapter_model.safetensors"


def _first_tensor(header: dict) -> str:
    return next(k for k in header if k != "__metadata__")


CORRUPTIONS = {
    "empty": lambda p: p.write_bytes(b""),
    "too_short": lambda p: p.write_bytes(b"\x01\x00\x00"),
    "truncated_data": lambda p: p.write_bytes(p.read_bytes()[:-10]),
    "truncated_header": lambda p: p.write_bytes(p.read_bytes()[:40]),
    "trailing_garbage": lambda p: p.write_bytes(p.read_bytes() + b"\x00" * 16),
    "huge_header_len": lambda p: p.write_bytes(struct.pack("<Q", 1 << 62) + p.read_bytes()[8:]),
    "header_len_past_eof": lambda p: p.write_bytes(struct.pack("<Q", p.stat().st_size) + p.read_bytes()[8:]),
    "header_not_json": lambda p: p.write_bytes(struct.pack("<Q", 4) + b"nope" + b"\x00" * 8),
    "header_not_object": lambda p: p.write_bytes(struct.pack("<Q", 2) + b"[]"),
    "pickle_renamed": lambda p: p.write_bytes(pickle.dumps({"a": 1})),
    "unknown_dtype": lambda p: rewrite_header(p, lambda h: {**h, _first_tensor(h): {**h[_first_tensor(h)], "dtype": "Q9"}}),
    "shape_vs_span": lambda p: rewrite_header(
        p, lambda h: {**h, _first_tensor(h): {**h[_first_tensor(h)], "shape": [h[_first_tensor(h)]["shape"][0] + 1, h[_first_tensor(h)]["shape"][1]]}}
    ),
    "offsets_out_of_file": lambda p: rewrite_header(
        p, lambda h: {**h, _first_tensor(h): {**h[_first_tensor(h)], "data_offsets": [10**9, 10**9 + 1]}}
    ),
    "negative_shape": lambda p: rewrite_header(p, lambda h: {**h, _first_tensor(h): {**h[_first_tensor(h)], "shape": [-8, 64]}}),
    "float_offsets": lambda p: rewrite_header(
        p, lambda h: {**h, _first_tensor(h): {**h[_first_tensor(h)], "data_offsets": [float(x) for x in h[_first_tensor(h)]["data_offsets"]]}}
    ),
    "overlap": lambda p: rewrite_header(
        p,
        lambda h: {
            k: ({**v, "data_offsets": [0, v["data_offsets"][1] - v["data_offsets"][0]]} if k != "__metadata__" else v)
            for k, v in h.items()
        },
    ),
    "extra_entry_key": lambda p: rewrite_header(p, lambda h: {**h, _first_tensor(h): {**h[_first_tensor(h)], "extra": 1}}),
    "bad_metadata": lambda p: rewrite_header(p, lambda h: {**h, "__metadata__": {"format": 1}}),
}


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_corrupt_weights(adapter, base, corruption):
    CORRUPTIONS[corruption](_weights(adapter))
    expect("corrupt_weights", inspect, adapter, base)


def test_duplicate_header_keys(tmp_path, base):
    folder = write_synthetic_adapter(tmp_path / "a", {})
    entry = '{"dtype":"F32","shape":[1],"data_offsets":[0,4]}'
    header = ('{"x":' + entry + ',"x":' + entry + "}").encode()
    _weights(folder).write_bytes(struct.pack("<Q", len(header)) + header + b"\x00" * 4)
    expect("corrupt_weights", inspect, folder, base, contains="duplicate")


def test_header_reader_matches_safetensors(adapter):
    from safetensors import safe_open

    tensors, sha, size = read_safetensors_header(_weights(adapter))
    with safe_open(str(_weights(adapter)), "pt") as f:
        assert set(f.keys()) == set(tensors)
        for key in f.keys():
            assert list(f.get_slice(key).get_shape()) == tensors[key]["shape"]
    assert size == _weights(adapter).stat().st_size


# --------------------------------------------------------------------------------------------
# Tarball extraction
# --------------------------------------------------------------------------------------------


def test_extract_single_top_folder_then_inspect(adapter, base, tmp_path):
    data = folder_to_targz(adapter, "my-adapter")
    out = safe_extract_tar_gz(data, tmp_path / "x", max_bytes=MAX_SIZE)
    assert out == tmp_path / "x" / "my-adapter"
    assert inspect(out, base).target_modules == ["q_proj", "v_proj"]


def test_extract_flat_archive_returns_dest_and_accepts_file_objects(adapter, base, tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for f in adapter.iterdir():
            tar.add(f, arcname=f"./{f.name}")
    buf.seek(0)
    out = safe_extract_tar_gz(buf, tmp_path / "x", max_bytes=MAX_SIZE)
    assert out == tmp_path / "x"
    assert inspect(out, base).rank == 8


def test_extract_files_without_dir_entries(tmp_path):
    data = targz([file_entry("top/a/b.txt", b"hi"), file_entry("top/c.txt", b"yo")])
    out = safe_extract_tar_gz(data, tmp_path / "x", max_bytes=1000)
    assert out == tmp_path / "x" / "top" and (out / "a" / "b.txt").read_bytes() == b"hi"


def test_extract_skips_macos_metadata(tmp_path):
    data = targz([file_entry("top/a.txt", b"hi"), file_entry("._top", b"meta"), file_entry("__MACOSX/top/._a.txt", b"m")])
    out = safe_extract_tar_gz(data, tmp_path / "x", max_bytes=1000)
    assert out == tmp_path / "x" / "top" and sorted(os.listdir(tmp_path / "x")) == ["top"]


@pytest.mark.parametrize(
    ("entry", "mentions"),
    [
        (file_entry("../x", b"evil"), ".."),
        (file_entry("top/../../x", b"evil"), ".."),
        (file_entry("/tmp/abs-evil", b"evil"), "absolute"),
        (file_entry("C:/evil", b"evil"), "absolute"),
        (file_entry("top\\..\\evil", b"evil"), "backslash"),
        (special_entry("top/link", tarfile.SYMTYPE, "/etc/passwd"), "link"),
        (special_entry("top/rel-link", tarfile.SYMTYPE, "../../x"), "link"),
        (special_entry("top/hard", tarfile.LNKTYPE, "top/a.txt"), "link"),
        (special_entry("top/fifo", tarfile.FIFOTYPE), "FIFO"),
        (special_entry("top/dev", tarfile.CHRTYPE), "devices"),
        (special_entry("top/blk", tarfile.BLKTYPE), "devices"),
    ],
    ids=["dotdot", "nested-dotdot", "absolute", "drive", "backslash", "symlink", "rel-symlink", "hardlink", "fifo", "chr", "blk"],
)
def test_extract_refuses_unsafe_members(tmp_path, entry, mentions):
    data = targz([file_entry("top/a.txt", b"ok"), entry])
    dest = tmp_path / "x"
    expect("unsafe_archive", safe_extract_tar_gz, data, dest, max_bytes=1000, contains=mentions)
    assert not dest.exists(), "partial extraction must be cleaned up"
    assert not (tmp_path / "x.evil").exists() and not Path("/tmp/abs-evil").exists()


def test_extract_tar_bomb_over_cap(tmp_path):
    bomb = targz([file_entry("top/zeros.bin", b"\x00" * (5 << 20))])
    assert len(bomb) < 20_000  # compresses to almost nothing
    dest = tmp_path / "x"
    expect("adapter_too_large", safe_extract_tar_gz, bomb, dest, max_bytes=1 << 20)
    assert not dest.exists()


def test_extract_many_small_files_over_cap(tmp_path):
    entries = [file_entry(f"top/f{i}", b"\x00" * 4000) for i in range(10)]
    expect("adapter_too_large", safe_extract_tar_gz, targz(entries), tmp_path / "x", max_bytes=30_000)


def test_extract_oversized_pax_header_is_cut_off(tmp_path):
    # tarfile reads PAX headers whole into memory; the stream cap must stop it, not the member size.
    info, payload = file_entry("top/a.txt", b"ok")
    info.pax_headers = {"comment": "x" * (3 << 20)}
    expect("adapter_too_large", safe_extract_tar_gz, targz([(info, payload)]), tmp_path / "x", max_bytes=100_000)


def test_extract_member_count_cap(tmp_path):
    entries = [file_entry(f"top/f{i}", b"x") for i in range(10)]
    expect("unsafe_archive", safe_extract_tar_gz, targz(entries), tmp_path / "x", max_bytes=10_000, max_members=5)


def test_extract_duplicate_member_refused(tmp_path):
    data = targz([file_entry("top/a.txt", b"one"), file_entry("top/a.txt", b"two")])
    expect("unsafe_archive", safe_extract_tar_gz, data, tmp_path / "x", max_bytes=1000)


@pytest.mark.parametrize(
    "blob",
    [b"", b"not a gzip at all", b"\x1f\x8b\x08\x00garbage-after-magic" * 3],
    ids=["empty", "not-gzip", "bad-deflate"],
)
def test_extract_corrupt_gzip(tmp_path, blob):
    expect("corrupt_archive", safe_extract_tar_gz, blob, tmp_path / "x", max_bytes=1000)


def test_extract_truncated_gzip(tmp_path):
    data = targz([file_entry("top/a.bin", os.urandom(20_000))])
    expect("corrupt_archive", safe_extract_tar_gz, data[: len(data) // 2], tmp_path / "x", max_bytes=100_000)


def test_extract_gzip_of_non_tar(tmp_path):
    import gzip

    expect("corrupt_archive", safe_extract_tar_gz, gzip.compress(b"hello " * 200), tmp_path / "x", max_bytes=100_000)


def test_extract_empty_archive(tmp_path):
    expect("corrupt_archive", safe_extract_tar_gz, targz([]), tmp_path / "x", max_bytes=1000)


def test_extract_into_non_empty_dest_is_a_programming_error(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep").write_text("x")
    with pytest.raises(ValueError):
        safe_extract_tar_gz(targz([file_entry("a", b"")]), tmp_path / "x", max_bytes=10)


def test_extract_failure_into_existing_empty_dest_leaves_it_empty(tmp_path):
    dest = tmp_path / "x"
    dest.mkdir()
    data = targz([file_entry("top/a.txt", b"ok"), file_entry("../evil", b"x")])
    expect("unsafe_archive", safe_extract_tar_gz, data, dest, max_bytes=1000)
    assert dest.is_dir() and not any(dest.iterdir())


# --------------------------------------------------------------------------------------------
# A shipped triage policy (triage_policy.json)
# --------------------------------------------------------------------------------------------


def test_an_adapter_may_ship_its_calibrated_triage_policy(adapter, base) -> None:
    (adapter / "triage_policy.json").write_text(json.dumps(
        {"urgent_threshold": 0.3, "review_threshold": 0.7, "temperature": {"category": 1.4}}))
    assert "triage_policy.json" in inspect(adapter, base).files


@pytest.mark.parametrize(("policy", "field"), [
    ({"urgent_threshold": 1.5}, "urgent_threshold"),
    ({"review_threshold": -0.1}, "review_threshold"),
    ({"temperature": {"category": 0}}, "temperature.category"),
    ({"urgent_treshold": 0.3}, "urgent_treshold"),  # a typo is not silently ignored
])
def test_a_bad_triage_policy_is_refused_naming_its_field(adapter, base, policy, field) -> None:
    (adapter / "triage_policy.json").write_text(json.dumps(policy))
    with pytest.raises(AdapterValidationError) as refused:
        inspect(adapter, base)
    assert refused.value.status == 400 and refused.value.code == "invalid_triage_policy"
    assert f"'{field}'" in refused.value.message


def test_a_triage_policy_that_is_not_json_is_refused(adapter, base) -> None:
    (adapter / "triage_policy.json").write_text("{urgent: 0.3")
    with pytest.raises(AdapterValidationError, match="triage_policy.json"):
        inspect(adapter, base)
