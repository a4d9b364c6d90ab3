"""loragate's grouped CPU LoRA ops give vLLM's results (they replace them in the engine), except
that a base token (index -1) gets no adapter delta where vLLM's torch ops alias the last slot."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
vllm_ops = pytest.importorskip("vllm.lora.ops.torch_ops.lora_ops")

from service.engine.plugins.cpu_lora_ops import LONG_RUN, StepPlan, patch_cpu_lora_ops  # noqa: E402

NAMES = ("bgmv_shrink", "bgmv_expand", "bgmv_expand_slice", "sgmv_shrink", "sgmv_expand", "sgmv_expand_slice")
ORIGINAL = {name: getattr(vllm_ops, name) for name in NAMES}


@pytest.fixture(scope="module")
def fast_ops() -> dict:
    patch_cpu_lora_ops()
    ops = {name: getattr(vllm_ops, name) for name in ORIGINAL}
    assert all(ops[name] is not ORIGINAL[name] for name in ORIGINAL), "ops were not replaced"
    return ops


@pytest.mark.parametrize("indices", [[0] * 7, [0, 1, 2, 1, 0, 2, 2], [2, 2, 2, 0, 0, 1, 1]])
@pytest.mark.parametrize("four_dims", [False, True])
def test_same_results_as_vllm(fast_ops: dict, indices: list[int], four_dims: bool) -> None:
    torch.manual_seed(0)
    tokens, rank, hidden, out = len(indices), 8, 64, 96
    index = torch.tensor(indices)
    a = torch.randn(3, rank, hidden)
    b = torch.randn(3, out, rank)
    if four_dims:
        a, b = a.unsqueeze(1), b.unsqueeze(1)
    x = torch.randn(tokens, hidden)

    expected, actual = torch.zeros(tokens, rank), torch.zeros(tokens, rank)
    ORIGINAL["bgmv_shrink"](x, a, expected, index, 0.5)
    fast_ops["bgmv_shrink"](x, a, actual, index, 0.5)
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)

    for add in (False, True):
        expected = torch.ones(tokens, out + 4)
        actual = expected.clone()
        ORIGINAL["bgmv_expand"](expected_in := torch.randn(tokens, rank), b, expected, index, add)
        fast_ops["bgmv_expand"](expected_in, b, actual, index, add)
        torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)

        expected = torch.ones(tokens, out * 2)
        actual = expected.clone()
        ORIGINAL["bgmv_expand_slice"](expected_in, b, expected, index, out, out, add)
        fast_ops["bgmv_expand_slice"](expected_in, b, actual, index, out, out, add)
        torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("indices", [[-1, 0, -1, 2, 2, 0, -1], [-1] * 5, [2, -1]])
def test_base_tokens_get_no_adapter_delta(fast_ops: dict, indices: list[int]) -> None:
    """Every slot holds an adapter (slot 2 is the last), as when max_loras adapters are in a batch:
    a -1 token must come out as if no adapter were loaded, not with slot 2's delta."""
    torch.manual_seed(1)
    tokens, rank, hidden, out = len(indices), 4, 32, 48
    index = torch.tensor(indices)
    a, b = torch.randn(3, rank, hidden), torch.randn(3, out, rank)
    x, shrunk = torch.randn(tokens, hidden), torch.randn(tokens, rank)

    expected_shrink = torch.stack([
        0.5 * (x[t] @ a[i].T) if i >= 0 else torch.zeros(rank) for t, i in enumerate(indices)
    ])
    actual = torch.full((tokens, rank), 7.0)  # stale buffer contents must not survive
    fast_ops["bgmv_shrink"](x, a, actual, index, 0.5)
    torch.testing.assert_close(actual, expected_shrink, rtol=1e-5, atol=1e-5)

    base = torch.randn(tokens, out * 2)
    expected = base.clone()
    for t, i in enumerate(indices):
        if i >= 0:
            expected[t, out:] += shrunk[t] @ b[i].T
    actual = base.clone()
    fast_ops["bgmv_expand_slice"](shrunk, b, actual, index, out, out, True)
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)

    actual = base[:, :out].clone()
    fast_ops["bgmv_expand"](shrunk, b, actual, index, True)
    torch.testing.assert_close(actual, expected[:, out:] - base[:, out:] + base[:, :out], rtol=1e-5, atol=1e-5)


def _runs(indices: list[int]) -> tuple:
    """vLLM's prefill metadata for per-token adapter indices (compute_meta: runs of equal indices)."""
    from vllm.lora.punica_wrapper.utils import compute_meta

    starts, lengths, run_indices, batches, longest, tokens, _ = compute_meta(torch.tensor(indices))
    return starts, lengths, run_indices, batches, longest, tokens


@pytest.mark.parametrize("indices", [
    [1] * 6, [0, 0, 2, 2, 2, 1], [2, 0, 2, 0, 1, 1, 1],
    [0] * 20 + [1, 2, 1, 0, 2] + [2] * 17 + [1, 0],  # long runs as views, short ones batched
])
def test_sgmv_runs_match_vllm(fast_ops: dict, indices: list[int]) -> None:
    """vLLM's sgmv ops expand the runs to per-token indices and call its bgmv ops (the originals here,
    since the module's bgmv names are patched)."""
    torch.manual_seed(2)
    tokens, rank, hidden, out = len(indices), 8, 64, 96
    meta, index = _runs(indices), torch.tensor(indices)
    a, b = torch.randn(3, 1, rank, hidden), torch.randn(3, 1, out, rank)
    x, shrunk = torch.randn(tokens, hidden), torch.randn(tokens, rank)

    expected, actual = torch.zeros(tokens, rank), torch.full((tokens, rank), 3.0)
    ORIGINAL["bgmv_shrink"](x, a, expected, index, 0.5)
    fast_ops["sgmv_shrink"](x, a, actual, *meta, 0.5)
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)

    for add in (False, True):
        expected = torch.ones(tokens, out * 2)
        actual = expected.clone()
        ORIGINAL["bgmv_expand_slice"](shrunk, b, expected, index, out, out, add)
        fast_ops["sgmv_expand_slice"](shrunk, b, actual, *meta, out, out, add)
        torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)

        expected = torch.ones(tokens, out + 4)
        actual = expected.clone()
        ORIGINAL["bgmv_expand"](shrunk, b, expected, index, add)
        fast_ops["sgmv_expand"](shrunk, b, actual, *meta, add)
        torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)


def test_sgmv_base_runs_get_no_adapter_delta(fast_ops: dict) -> None:
    torch.manual_seed(3)
    indices = [-1, -1, 2, 2, -1, 0]
    tokens, rank, hidden, out = len(indices), 4, 32, 48
    meta = _runs(indices)
    a, b = torch.randn(3, rank, hidden), torch.randn(3, out, rank)
    x, shrunk = torch.randn(tokens, hidden), torch.randn(tokens, rank)

    actual = torch.full((tokens, rank), 7.0)
    fast_ops["sgmv_shrink"](x, a, actual, *meta, 2.0)
    for t, i in enumerate(indices):
        torch.testing.assert_close(actual[t], 2.0 * (x[t] @ a[i].T) if i >= 0 else torch.zeros(rank))

    base = torch.randn(tokens, out)
    actual = base.clone()
    fast_ops["sgmv_expand"](shrunk, b, actual, *meta, True)
    for t, i in enumerate(indices):
        torch.testing.assert_close(actual[t], base[t] + shrunk[t] @ b[i].T if i >= 0 else base[t])


def test_bfloat16_weights_multiply_in_float32(fast_ops: dict) -> None:
    """bf16 adapter weights and inputs are multiplied in fp32 (as the Triton kernels accumulate):
    the result is the fp32 product of the bf16 values, to fp32 rounding."""
    torch.manual_seed(4)
    meta = _runs([0, 0, 1])
    a = torch.randn(2, 8, 64).to(torch.bfloat16)
    x = torch.randn(3, 64).to(torch.bfloat16)
    actual = torch.zeros(3, 8)
    fast_ops["sgmv_shrink"](x, a, actual, *meta, 1.0)
    expected = torch.stack([x[0].float() @ a[0].float().T, x[1].float() @ a[0].float().T,
                            x[2].float() @ a[1].float().T])
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)


def test_padded_slots_multiply_at_their_rank_and_notice_rewrites(fast_ops: dict) -> None:
    """Slots are padded to max_lora_rank (8 here); slot 0 holds a rank-3 adapter, later rewritten in
    place with a rank-5 one (as vLLM loads an adapter into a slot): results stay vLLM's."""
    torch.manual_seed(5)
    indices, hidden, out, width = [0, 0, 1, 0], 32, 40, 8
    meta, index = _runs(indices), torch.tensor(indices)
    a, b = torch.zeros(2, width, hidden), torch.zeros(2, out, width)
    a[0, :3], b[0, :, :3] = torch.randn(3, hidden), torch.randn(out, 3)
    a[1], b[1] = torch.randn(width, hidden), torch.randn(out, width)
    x = torch.randn(len(indices), hidden)
    for rank in (3, 5):
        a[0, :rank], b[0, :, :rank] = torch.randn(rank, hidden), torch.randn(out, rank)
        expected, actual = torch.zeros(len(indices), width), torch.full((len(indices), width), 9.0)
        ORIGINAL["bgmv_shrink"](x, a, expected, index, 1.0)
        fast_ops["sgmv_shrink"](x, a, actual, *meta, 1.0)
        torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)
        expected_out, actual_out = torch.ones(len(indices), out), torch.ones(len(indices), out)
        ORIGINAL["bgmv_expand"](expected, b, expected_out, index, True)
        fast_ops["sgmv_expand"](actual, b, actual_out, *meta, True)
        torch.testing.assert_close(actual_out, expected_out, rtol=1e-5, atol=1e-5)


def test_plan_takes_long_runs_as_views_and_batches_short_ones() -> None:
    plan = StepPlan.from_token_slots(torch.tensor([-1, -1] + [3] * LONG_RUN + [0, 1, 1, -1, 0]))
    assert plan.runs == ((slice(2, 2 + LONG_RUN), 3),)
    first = 2 + LONG_RUN
    assert plan.rows.tolist() == [first, first + 1, first + 2, first + 4]
    assert plan.slots.tolist() == [0, 1, 1, 0]


def test_plan_of_one_short_run_uses_a_view_and_of_base_only_is_empty() -> None:
    assert StepPlan.from_token_slots(torch.tensor([-1, 2, 2, -1])) == StepPlan(((slice(1, 3), 2),))
    assert StepPlan.from_token_slots(torch.tensor([-1, -1])) == StepPlan(())


@pytest.mark.parametrize("is_prefill", [True, False])
def test_wrapper_plans_once_per_step_and_matches_vllm(fast_ops: dict, is_prefill: bool) -> None:
    """vLLM's linear layers call the punica wrapper's add_lora_linear: with the step's plan made in
    update_metadata, a merged qkv-style layer (three slices) gives vLLM's per-token result, base
    rows unchanged."""
    from vllm.lora.layers.utils import LoRAMapping
    from vllm.lora.punica_wrapper.punica_cpu import PunicaWrapperCPU

    torch.manual_seed(6)
    lora_ids = [0, 1, 2, 1, 0, 3, 3, 2]  # 0: base; ids 1-3 sit in slots 0-2
    tokens, hidden, rank, slices = len(lora_ids), 32, 4, (16, 8, 8)
    wrapper = PunicaWrapperCPU(max_num_batched_tokens=64, max_batches=8, device="cpu")
    wrapper.update_metadata(LoRAMapping(lora_ids, lora_ids, is_prefill=is_prefill), [1, 2, 3], 3, 1000)
    assert wrapper._loragate_plan.rows is not None  # short runs: the batched product
    a = tuple(torch.randn(3, 1, rank, hidden).to(torch.bfloat16) for _ in slices)
    b = tuple(torch.randn(3, 1, size, rank).to(torch.bfloat16) for size in slices)
    x = torch.randn(tokens, hidden).to(torch.bfloat16)
    y = torch.zeros(tokens, sum(slices))
    wrapper.add_lora_linear(y, x, a, b, 0.5, slices)

    for t, lora_id in enumerate(lora_ids):
        slot = lora_id - 1
        expected = torch.cat([0.5 * (x[t].float() @ a[i][slot, 0].float().T) @ b[i][slot, 0].float().T
                              for i in range(len(slices))]) if lora_id else torch.zeros(sum(slices))
        torch.testing.assert_close(y[t], expected, rtol=1e-4, atol=1e-4)


def test_a_base_only_step_skips_the_lora_work(fast_ops: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """A step without adapter tokens adds nothing and allocates nothing; a step with one adds."""
    from vllm.lora.layers.utils import LoRAMapping
    from vllm.lora.punica_wrapper.punica_cpu import PunicaWrapperCPU

    slices, hidden, rank = (16, 8), 32, 4
    a = tuple(torch.randn(2, 1, rank, hidden) for _ in slices)
    b = tuple(torch.randn(2, 1, size, rank) for size in slices)
    wrapper = PunicaWrapperCPU(max_num_batched_tokens=64, max_batches=8, device="cpu")
    shrinks: list[int] = []
    monkeypatch.setattr(PunicaWrapperCPU, "add_shrink", lambda self, *args, **kw: shrinks.append(1))
    monkeypatch.setattr(PunicaWrapperCPU, "add_expand", lambda self, *args, **kw: None)
    wrapper.update_metadata(LoRAMapping([0, 0, 0], [0, 0, 0], is_prefill=False), [1, 2], 2, 1000)
    assert wrapper._loragate_plan.empty
    y = torch.ones(3, sum(slices))
    wrapper.add_lora_linear(y, torch.randn(3, hidden), a, b, 1.0, slices)
    assert shrinks == [] and torch.equal(y, torch.ones(3, sum(slices)))
    wrapper.update_metadata(LoRAMapping([0, 1, 0], [0, 1, 0], is_prefill=False), [1, 2], 2, 1000)
    assert not wrapper._loragate_plan.empty
    wrapper.add_lora_linear(y, torch.randn(3, hidden), a, b, 1.0, slices)
    assert shrinks == [1]
