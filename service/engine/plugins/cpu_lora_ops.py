"""CPU LoRA ops: one matrix product per run of tokens sharing an adapter, none for base tokens.

vLLM's CPU torch ops gather a copy of the adapter matrices for every token, convert them to the
output dtype and multiply token by token; V1 sends every step through their `sgmv_*` form, which
first expands the per-run adapter indices to per-token ones. These replacements read the runs
directly (vLLM's prefill metadata: start, length and adapter of each run of consecutive tokens)
and multiply each run's rows, as views, by its adapter's matrices in the weights' own dtype.

A negative adapter index is vLLM's "no adapter" mark. Its Triton kernels skip those tokens, but
its CPU torch ops gather `weights[-1]`, the last adapter slot, so a base request batched with a
full set of adapters got that adapter's delta (vllm-project/vllm#48421). Here base tokens cost
nothing and get nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

Groups = Iterable[tuple[Any, int]]  # (rows: a slice or index tensor, adapter slot)

def _stacked(weights: Any) -> Any:
    return weights.squeeze(1) if weights.dim() == 4 else weights  # (slots, out, in)


def _slot_rank(weights: Any, slot: int, rank_dim: int) -> int:
    """The rank of the adapter in `slot`. vLLM pads every slot to max_lora_rank: it copies an
    adapter's A into the leading rows and its B into the leading columns and zeroes the rest, so a
    rank-8 adapter under the default max_lora_rank of 64 would be multiplied 8 times over. Cached
    until the slot is written again (every in-place write moves the tensor's version counter). The
    cache lives on the tensor itself: keyed by id(), a freed tensor's id could name a new one."""
    ranks: dict[int, tuple[int, int]] = weights.__dict__.setdefault("_loragate_slot_ranks", {})
    cached = ranks.get(slot)
    if cached is not None and cached[0] == weights._version:
        return cached[1]
    used = _stacked(weights)[slot].ne(0).any(dim=1 - rank_dim).nonzero()
    rank = int(used[-1]) + 1 if used.numel() else 1
    ranks[slot] = (weights._version, rank)
    return rank


def _product(rows: Any, weight: Any) -> Any:
    """`rows @ weight.T` in the weights' dtype, as vLLM's Triton kernels multiply, rather than
    copying the adapter matrices to the output dtype on every call as vLLM's torch ops do."""
    return rows.to(weight.dtype) @ weight.T


def _runs(starts: Any, lengths: Any, indices: Any, count: int) -> list[tuple[slice, int]]:
    """The adapter runs of an sgmv call (base runs left out)."""
    return [(slice(start, start + length), index) for start, length, index in
            zip(starts[:count].tolist(), lengths[:count].tolist(), indices[:count].tolist()) if index >= 0]


def _token_groups(indices: Any) -> Iterator[tuple[Any, int]]:
    """The adapter groups of a bgmv call (one index per token; base tokens left out)."""
    import torch

    distinct = torch.unique(indices).tolist()
    return ((slice(None) if len(distinct) == 1 else (indices == index).nonzero(as_tuple=True)[0], index)
            for index in distinct if index >= 0)


def _shrink(inputs: Any, weights: Any, output: Any, groups: Groups, scaling: float) -> None:
    stacked = _stacked(weights)
    target = output[:, : stacked.shape[1]]
    target.zero_()  # base rows, and the columns past each adapter's rank
    for rows, index in groups:
        rank = _slot_rank(weights, index, rank_dim=0)
        target[rows, :rank] = _product(inputs[rows], stacked[index, :rank]).to(target.dtype).mul_(scaling)


def _expand(inputs: Any, weights: Any, output: Any, groups: Groups, offset: int, size: int, add: bool) -> None:
    stacked = _stacked(weights)
    columns = slice(offset, offset + size)
    for rows, index in groups:
        rank = _slot_rank(weights, index, rank_dim=1)
        # A one-row input broadcasts over every output row, as in vLLM's op.
        product = _product(inputs[rows, :rank], stacked[index, :, :rank])[:, :size]
        if add:
            output[rows, columns] += product
        else:
            output[rows, columns] = product


def patch_cpu_lora_ops() -> None:
    """Swap vLLM's CPU LoRA kernels for these (vLLM's results up to float rounding, minus the
    last-slot aliasing); measured in loadtests/results (`loragate bench`, peer-adapter, adapters)."""
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        return
    from vllm.lora.ops.torch_ops import lora_ops
    from vllm.lora.punica_wrapper import punica_cpu

    def sgmv_shrink(inputs: Any, lora_a_weights: Any, output_tensor: Any, b_seq_start_loc: Any,
                    seq_len_tensor: Any, lora_indices_tensor: Any, batches: int, max_seq_length: int,
                    token_nums: int, scaling: float) -> None:
        _shrink(inputs, lora_a_weights, output_tensor, _runs(b_seq_start_loc, seq_len_tensor, lora_indices_tensor,
                                                             batches), scaling)

    def sgmv_expand(inputs: Any, lora_b_weights: Any, output_tensor: Any, b_seq_start_loc: Any,
                    seq_len_tensor: Any, lora_indices_tensor: Any, batches: int, max_seq_length: int,
                    token_nums: int, add_inputs: bool = False) -> None:
        size = min(lora_b_weights.shape[-2], output_tensor.shape[1])
        _expand(inputs, lora_b_weights, output_tensor, _runs(b_seq_start_loc, seq_len_tensor, lora_indices_tensor,
                                                             batches), 0, size, add_inputs)

    def sgmv_expand_slice(inputs: Any, lora_b_weights: Any, output_tensor: Any, b_seq_start_loc: Any,
                          seq_len_tensor: Any, lora_indices_tensor: Any, batches: int, max_seq_length: int,
                          token_nums: int, slice_offset: int, slice_size: int, add_inputs: bool = False) -> None:
        _expand(inputs, lora_b_weights, output_tensor, _runs(b_seq_start_loc, seq_len_tensor, lora_indices_tensor,
                                                             batches), slice_offset, slice_size, add_inputs)

    def bgmv_shrink(inputs: Any, lora_a_weights: Any, output_tensor: Any, lora_indices_tensor: Any,
                    scaling: float = 1.0) -> None:
        _shrink(inputs, lora_a_weights, output_tensor, _token_groups(lora_indices_tensor), scaling)

    def bgmv_expand(inputs: Any, lora_b_weights: Any, output_tensor: Any, lora_indices_tensor: Any,
                    add_inputs: bool = True) -> None:
        size = min(lora_b_weights.shape[-2], output_tensor.shape[1])
        _expand(inputs, lora_b_weights, output_tensor, _token_groups(lora_indices_tensor), 0, size, add_inputs)

    def bgmv_expand_slice(inputs: Any, lora_b_weights: Any, output_tensor: Any, lora_indices_tensor: Any,
                          slice_offset: int, slice_size: int, add_inputs: bool = True) -> None:
        _expand(inputs, lora_b_weights, output_tensor, _token_groups(lora_indices_tensor), slice_offset, slice_size,
                add_inputs)

    ops = {"sgmv_shrink": sgmv_shrink, "sgmv_expand": sgmv_expand, "sgmv_expand_slice": sgmv_expand_slice,
           "bgmv_shrink": bgmv_shrink, "bgmv_expand": bgmv_expand, "bgmv_expand_slice": bgmv_expand_slice}
    # punica_cpu imported them by name; lora_ops' own callers look them up as module globals.
    for module in (lora_ops, punica_cpu):
        for name, op in ops.items():
            setattr(module, name, op)
