"""CPU LoRA ops: fp32 products at each adapter's real rank, one per run of tokens sharing an adapter
(or one batched product for many short runs), none for base tokens.

vLLM's CPU torch ops gather a copy of the adapter matrices for every token, convert them to the
output dtype and multiply token by token. These replacements work from the step's runs of
consecutive same-adapter tokens (worked out once per step, not in each of the ~14 calls per layer):
- a long run (a prompt being prefilled, or a batch with one adapter) multiplies its rows, as views;
- short runs (decode steps with adapters mixed request by request) are multiplied together: one
  matmul against every slot's matrices side by side, instead of one small product per run;
- the products run in fp32 on an fp32 copy of the adapter matrices, cut to the largest real rank:
  on these CPUs a bf16 product with the rank as inner dimension is 20-70x slower than fp32
  (8 tokens x rank 8 -> 1536: 313 us against 16 us), and vLLM pads every slot to max_lora_rank.

A negative adapter index is vLLM's "no adapter" mark. Its Triton kernels skip those tokens, but
its CPU torch ops gather `weights[-1]`, the last adapter slot, so a base request batched with a
full set of adapters got that adapter's delta (vllm-project/vllm#48421). Here base tokens cost
nothing and get nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Runs at least this long are multiplied on their own; shorter ones together (batched product).
LONG_RUN = 16


@dataclass(frozen=True)
class StepPlan:
    """Which rows of a step's tokens go through which adapter slot (base rows are left out)."""

    runs: tuple[tuple[slice, int], ...]  # (rows, slot), each multiplied on its own
    rows: Any = None  # index tensor: the tokens of the short runs, multiplied together
    slots: Any = None  # index tensor: their slots
    positions: Any = None  # 0..len(rows)-1, to pick each row's own slot

    @property
    def empty(self) -> bool:
        """No token of the step has an adapter (a base-only step)."""
        return not self.runs and self.rows is None

    @classmethod
    def from_runs(cls, starts: list[int], lengths: list[int], slots: list[int]) -> StepPlan:
        adapter_runs = [(start, length, slot) for start, length, slot in zip(starts, lengths, slots) if slot >= 0]
        short = [run for run in adapter_runs if run[1] < LONG_RUN]
        if len(short) < 2:  # a lone short run is cheapest as views
            return cls(tuple((slice(start, start + length), slot) for start, length, slot in adapter_runs))
        import torch

        rows = [row for start, length, _ in short for row in range(start, start + length)]
        row_slots = [slot for _, length, slot in short for _ in range(length)]
        return cls(tuple((slice(start, start + length), slot) for start, length, slot in adapter_runs
                         if length >= LONG_RUN), torch.tensor(rows), torch.tensor(row_slots), torch.arange(len(rows)))

    @classmethod
    def from_token_slots(cls, token_slots: Any) -> StepPlan:
        """From one adapter slot per token (vLLM's `token_lora_indices`)."""
        import torch

        slots, lengths = torch.unique_consecutive(token_slots, return_counts=True)
        lengths_list = lengths.tolist()
        starts = [0]
        for length in lengths_list[:-1]:
            starts.append(starts[-1] + length)
        return cls.from_runs(starts, lengths_list, slots.tolist())

    @classmethod
    def from_sgmv(cls, starts: Any, lengths: Any, slots: Any, count: int) -> StepPlan:
        return cls.from_runs(starts[:count].tolist(), lengths[:count].tolist(), slots[:count].tolist())


def _stacked(weights: Any) -> Any:
    return weights.squeeze(1) if weights.dim() == 4 else weights  # (slots, out, in)


def _slot_rank(weights: Any, slot: int, rank_dim: int) -> int:
    """The rank of the adapter in `slot`. vLLM pads every slot to max_lora_rank: it copies an
    adapter's A into the leading rows and its B into the leading columns and zeroes the rest, so a
    rank-8 adapter under the default max_lora_rank of 64 would be multiplied 8 times over."""
    used = _stacked(weights)[slot].ne(0).any(dim=1 - rank_dim).nonzero()
    return int(used[-1]) + 1 if used.numel() else 1


def _fp32_slots(weights: Any, rank_dim: int) -> tuple[Any, list[int]]:
    """Every slot in fp32 as (slots, rank, features), cut to the largest real rank (the padding is
    zeros, so the cut is exact), and each slot's rank. Cached until the weights are written again
    (every in-place write, as when vLLM loads an adapter into a slot, moves the tensor's version
    counter). The cache lives on the tensor itself: keyed by id(), a freed tensor's id could name a
    new one."""
    cached = weights.__dict__.get("_loragate_fp32_slots")
    if cached is not None and cached[0] == weights._version:
        return cached[1], cached[2]
    stacked = _stacked(weights)
    ranks = [_slot_rank(weights, slot, rank_dim) for slot in range(stacked.shape[0])]
    cut = stacked[:, : max(ranks)] if rank_dim == 0 else stacked[:, :, : max(ranks)].transpose(1, 2)
    copy = cut.float().contiguous()
    weights.__dict__["_loragate_fp32_slots"] = (weights._version, copy, ranks)
    return copy, ranks


def _shrink(inputs: Any, weights: Any, output: Any, plan: StepPlan, scaling: float) -> None:
    """output[rows, :rank] = scaling * inputs[rows] @ A[slot].T"""
    target = output[:, : _stacked(weights).shape[1]]
    target.zero_()  # base rows, and the columns past each adapter's rank
    if not plan.runs and plan.rows is None:
        return
    a, ranks = _fp32_slots(weights, rank_dim=0)  # (slots, rank, in)
    for rows, slot in plan.runs:
        rank = ranks[slot]
        target[rows, :rank] = (inputs[rows].float() @ a[slot, :rank].T).mul_(scaling)
    if plan.rows is not None:
        # Every slot's product in one matmul (slots x rank columns), then each token's own slot.
        slots, rank = a.shape[0], a.shape[1]
        every_slot = inputs[plan.rows].float() @ a.view(slots * rank, -1).T
        target[plan.rows, :rank] = every_slot.view(-1, slots, rank)[plan.positions, plan.slots].mul_(scaling)


def _expand(inputs: Any, weights: Any, output: Any, plan: StepPlan, offset: int, size: int, add: bool) -> None:
    """output[rows, offset:offset+size] (+)= inputs[rows, :rank] @ B[slot, :size].T"""
    import torch

    if not plan.runs and plan.rows is None:
        return
    columns = slice(offset, offset + size)
    b, ranks = _fp32_slots(weights, rank_dim=1)  # (slots, rank, out)
    products = [(rows, inputs[rows, : ranks[slot]].float() @ b[slot, : ranks[slot], :size])
                for rows, slot in plan.runs]  # a one-row input broadcasts over the run, as in vLLM's op
    if plan.rows is not None:
        # Each token's input placed in its slot's block of a (slots x rank) row: one matmul for all.
        slots, rank = b.shape[0], b.shape[1]
        blocks = torch.zeros(len(plan.positions), slots, rank)
        blocks[plan.positions, plan.slots] = inputs[plan.rows, :rank].float()
        products.append((plan.rows, blocks.view(-1, slots * rank) @ b.view(slots * rank, -1)[:, :size]))
    for rows, product in products:
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
        plan = StepPlan.from_sgmv(b_seq_start_loc, seq_len_tensor, lora_indices_tensor, batches)
        _shrink(inputs, lora_a_weights, output_tensor, plan, scaling)

    def sgmv_expand(inputs: Any, lora_b_weights: Any, output_tensor: Any, b_seq_start_loc: Any,
                    seq_len_tensor: Any, lora_indices_tensor: Any, batches: int, max_seq_length: int,
                    token_nums: int, add_inputs: bool = False) -> None:
        size = min(lora_b_weights.shape[-2], output_tensor.shape[1])
        plan = StepPlan.from_sgmv(b_seq_start_loc, seq_len_tensor, lora_indices_tensor, batches)
        _expand(inputs, lora_b_weights, output_tensor, plan, 0, size, add_inputs)

    def sgmv_expand_slice(inputs: Any, lora_b_weights: Any, output_tensor: Any, b_seq_start_loc: Any,
                          seq_len_tensor: Any, lora_indices_tensor: Any, batches: int, max_seq_length: int,
                          token_nums: int, slice_offset: int, slice_size: int, add_inputs: bool = False) -> None:
        plan = StepPlan.from_sgmv(b_seq_start_loc, seq_len_tensor, lora_indices_tensor, batches)
        _expand(inputs, lora_b_weights, output_tensor, plan, slice_offset, slice_size, add_inputs)

    def bgmv_shrink(inputs: Any, lora_a_weights: Any, output_tensor: Any, lora_indices_tensor: Any,
                    scaling: float = 1.0) -> None:
        _shrink(inputs, lora_a_weights, output_tensor, StepPlan.from_token_slots(lora_indices_tensor), scaling)

    def bgmv_expand(inputs: Any, lora_b_weights: Any, output_tensor: Any, lora_indices_tensor: Any,
                    add_inputs: bool = True) -> None:
        size = min(lora_b_weights.shape[-2], output_tensor.shape[1])
        plan = StepPlan.from_token_slots(lora_indices_tensor)
        _expand(inputs, lora_b_weights, output_tensor, plan, 0, size, add_inputs)

    def bgmv_expand_slice(inputs: Any, lora_b_weights: Any, output_tensor: Any, lora_indices_tensor: Any,
                          slice_offset: int, slice_size: int, add_inputs: bool = True) -> None:
        plan = StepPlan.from_token_slots(lora_indices_tensor)
        _expand(inputs, lora_b_weights, output_tensor, plan, slice_offset, slice_size, add_inputs)

    ops = {"sgmv_shrink": sgmv_shrink, "sgmv_expand": sgmv_expand, "sgmv_expand_slice": sgmv_expand_slice,
           "bgmv_shrink": bgmv_shrink, "bgmv_expand": bgmv_expand, "bgmv_expand_slice": bgmv_expand_slice}
    # punica_cpu imported them by name; lora_ops' own callers look them up as module globals.
    for module in (lora_ops, punica_cpu):
        for name, op in ops.items():
            setattr(module, name, op)
    _plan_once_per_step(punica_cpu.PunicaWrapperCPU)


def _plan_once_per_step(wrapper: type) -> None:
    """The linear layers' shrink and expand (~14 calls per layer and step) share one plan, made
    when vLLM maps the step's tokens to adapters. Their prefill and decode forms both come here:
    for this plan the per-token indices (decode) and their runs (prefill) are the same thing."""
    if getattr(wrapper, "_loragate_planned", False):
        return
    update_metadata = wrapper.update_metadata

    def planned_update_metadata(self: Any, *args: Any, **kwargs: Any) -> None:
        update_metadata(self, *args, **kwargs)
        self._loragate_plan = StepPlan.from_token_slots(self.token_lora_indices)

    def plan(self: Any) -> StepPlan:
        planned = self.__dict__.get("_loragate_plan")
        return planned if planned is not None else StepPlan.from_token_slots(self.token_lora_indices)

    add_lora_linear = wrapper.add_lora_linear

    def add_lora_linear_unless_base_only(self: Any, y: Any, x: Any, *args: Any, **kwargs: Any) -> Any:
        # A base-only step adds nothing; vLLM would still allocate fp32 buffers and walk every
        # slice's shrink and expand (~210 calls per step here), which cost base traffic ~10-20%.
        if plan(self).empty:
            return None
        return add_lora_linear(self, y, x, *args, **kwargs)

    def apply_shrink(self: Any, y: Any, x: Any, w_t_all: Any, scale: float) -> None:
        _shrink(x, w_t_all, y.view(-1, y.shape[-1]), plan(self), scale)

    def apply_expand(self: Any, y: Any, x: Any, w_t_all: Any, y_offset: int, y_slice_size: int,
                     add_inputs: bool = True) -> None:
        _expand(x, w_t_all, y, plan(self), y_offset, y_slice_size, add_inputs)

    wrapper.update_metadata = planned_update_metadata
    wrapper.add_lora_linear = add_lora_linear_unless_base_only
    wrapper._apply_shrink = apply_shrink
    wrapper._apply_expand = apply_expand
    wrapper._loragate_planned = True
