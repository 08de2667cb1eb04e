"""Layers x directions: the one place that stacks cells, for every rnnlab layer class.

A layer is ``num_layers`` layers of ``num_directions`` cells. :class:`StackedLayer` owns what every
layer class shares — the ``torch.nn`` state layout ``h (L*D, B, H_out)`` (and ``c (L*D, B, H)``),
input, length, state and ``PackedSequence`` handling, unbatched input, the layer x direction loop
with dropout between layers, and the gate records ``record[layer][direction][name]`` — and leaves one
question to the layer class::

    run_direction(cell, inputs (T, B, F), state, lengths, reverse, record, path)
        -> (outputs (T, B, H_out), final state, gates or None)

where ``path`` is what :func:`rnnlab.nn.kernels.choose_path` decided for this call. A layer class
whose cells match a ``torch.nn`` kernel also overrides :meth:`forward_fused` (the whole stack at
once). Reversed directions read each sequence backwards from its own last valid step.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence

from rnnlab.errors import ConfigError, InputShapeError, StateError
from rnnlab.nn.sequence import check_input, check_lengths, repack_like

__all__ = ["StackedLayer"]


class StackedLayer:
    """Mixin for ``torch.nn.Module`` layers with ``input_size, hidden_size, num_layers, bidirectional,
    batch_first, dropout, cell_class`` and parameters named ``{name}_l{k}[_reverse]``."""

    cell_class: type

    # ----- layout -----------------------------------------------------------------------------
    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @staticmethod
    def param_suffix(layer: int, direction: int) -> str:
        """``_l{layer}`` plus ``_reverse`` for the backward direction (``torch.nn``'s names)."""
        return f"_l{layer}" + ("_reverse" if direction else "")

    @property
    def output_size(self) -> int:
        """Features per direction of the outputs: ``proj_size`` when projecting, else ``hidden_size``."""
        return getattr(self, "proj_size", 0) or self.hidden_size

    def layer_input_size(self, layer: int) -> int:
        return self.input_size if layer == 0 else self.num_directions * self.output_size

    def path(self, record: bool = False) -> str:  # pragma: no cover - every layer class defines it
        raise NotImplementedError

    # ----- states -----------------------------------------------------------------------------
    def state_shapes(self, batch_size: int) -> list[tuple[int, int, int]]:
        """``[h shape]`` or ``[h shape, c shape]`` in ``torch.nn``'s layout."""
        layers = self.num_layers * self.num_directions
        shapes = [(layers, batch_size, self.output_size)]
        if self.cell_class.has_cell_state:
            shapes.append((layers, batch_size, self.hidden_size))
        return shapes

    def init_state(self, batch_size: int, device=None, dtype=None):
        """Zero initial state: ``h (L*D, B, H_out)`` (and ``c (L*D, B, H)``)."""
        ref = self.weight_ih_l0
        zeros = [torch.zeros(s, device=device or ref.device, dtype=dtype or ref.dtype)
                 for s in self.state_shapes(batch_size)]
        return tuple(zeros) if len(zeros) == 2 else zeros[0]

    def check_state(self, hx, batch_size: int, dtype: torch.dtype, unbatched: bool):
        """``hx`` in the batched layout, after checking its structure, shapes and dtype (StateError)."""
        if hx is None:
            return None
        shapes = self.state_shapes(batch_size)
        parts = hx if isinstance(hx, (tuple, list)) else (hx,)
        kind = "a tuple (h_0, c_0)" if len(shapes) == 2 else "one tensor h_0 (no cell state)"
        if len(parts) != len(shapes) or not all(isinstance(p, Tensor) for p in parts):
            raise StateError(f"the initial state of {type(self).__name__} must be {kind}; got "
                             f"{type(hx).__name__} with {len(parts)} part(s)")
        if unbatched:
            parts = tuple(p.unsqueeze(1) if p.dim() == 2 else p for p in parts)
        for name, part, shape in zip(("h_0", "c_0"), parts, shapes):
            if tuple(part.shape) != shape:
                raise StateError(f"{name} must have shape {shape} (num_layers*directions, batch, size); "
                                 f"got {tuple(part.shape)}")
            if part.dtype != dtype:
                raise StateError(f"{name} must have the input's dtype {dtype}; got {part.dtype}")
        return tuple(parts) if len(parts) == 2 else parts[0]

    def cell_at(self, layer: int, direction: int):
        """The cell of ``(layer, direction)`` bound to this layer's tensors, built once and kept (outside
        the module tree, so it adds nothing to ``state_dict``); rebuilt if a tensor was replaced.
        Building modules inside ``forward`` is what ``torch.compile`` cannot trace."""
        cache = self.__dict__.setdefault("_bound_cells", {})
        cell = cache.get((layer, direction))
        suffix = self.param_suffix(layer, direction)
        if cell is None or any(getattr(self, name + suffix) is not getattr(cell, name)
                               for name in cell.parameter_shapes()):
            cell = cache[(layer, direction)] = self.bound_cell(layer, direction)
        return cell

    def bind_cells(self) -> None:
        """Build every (layer, direction) cell now, so that ``forward`` only looks them up."""
        for layer in range(self.num_layers):
            for direction in range(self.num_directions):
                self.cell_at(layer, direction)

    def _state_at(self, hx, index: int):
        if hx is None:
            return None
        return tuple(part[index] for part in hx) if isinstance(hx, tuple) else hx[index]

    # ----- forward ----------------------------------------------------------------------------
    def forward(self, input, hx=None, lengths=None, record: bool = False):
        """``(output, h_n)``, or ``(output, h_n, record)`` with ``record[layer][direction][gate]``.

        ``input (T, B, F)`` / ``(B, T, F)`` with ``batch_first`` / unbatched ``(T, F)`` / a
        ``PackedSequence``; ``lengths (B,)`` for padded batches (outputs at padding are zero, ``h_n``
        is each sequence's last valid step).
        """
        path = self.path(record)
        if isinstance(input, PackedSequence):
            if lengths is not None:
                raise ConfigError("give either a PackedSequence or lengths=, not both")
            return self._forward_packed(input, hx, path, record)
        x, unbatched = check_input(input, self.input_size, self.weight_ih_l0.dtype, self.batch_first)
        batch, steps = (x.shape[0], x.shape[1]) if self.batch_first else (x.shape[1], x.shape[0])
        if lengths is not None:
            lengths = check_lengths(lengths, batch, steps)
        hx = self.check_state(hx, batch, x.dtype, unbatched)
        if path == "fused":
            output, state, recorded = *self.forward_fused(x, hx, lengths, steps), None
        else:
            output, state, recorded = self._forward_stack(x, hx, lengths, record, path)
        if unbatched:
            output = output.squeeze(0 if self.batch_first else 1)
            state = tuple(s.squeeze(1) for s in state) if isinstance(state, tuple) else state.squeeze(1)
        return (output, state, recorded) if record else (output, state)

    def forward_fused(self, x: Tensor, hx, lengths: Tensor | None, steps: int):  # pragma: no cover
        raise ConfigError(f"{type(self).__name__} has no fused kernel")

    def _forward_stack(self, x: Tensor, hx, lengths: Tensor | None, record: bool, path: str):
        """Every layer and direction through :meth:`run_direction`, dropout between layers."""
        layer_input = x.transpose(0, 1) if self.batch_first else x  # (T, B, F)
        if lengths is not None and int(lengths.min()) == layer_input.shape[0]:
            lengths = None  # nothing is padded: the plain computation is the same
        finals, records = [], []
        for layer in range(self.num_layers):
            outputs, layer_records = [], []
            for direction in range(self.num_directions):
                state = self._state_at(hx, layer * self.num_directions + direction)
                out, state, gates = self.run_direction(self.cell_at(layer, direction), layer_input, state,
                                                       lengths, direction == 1, record, path)
                outputs.append(out)
                finals.append(state)
                if record:
                    layer_records.append({k: v.transpose(0, 1) if self.batch_first else v for k, v in gates.items()})
            layer_input = outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=-1)  # (T, B, D*H_out)
            if self.dropout and self.training and layer < self.num_layers - 1:
                layer_input = F.dropout(layer_input, self.dropout, training=True)
            records.append(layer_records)
        output = layer_input.transpose(0, 1) if self.batch_first else layer_input
        if isinstance(finals[0], tuple):
            state = tuple(torch.stack(parts) for parts in zip(*finals))  # (h_n, c_n)
        else:
            state = torch.stack(finals)  # (L*D, B, H)
        return output, state, (records if record else None)

    def _forward_packed(self, packed: PackedSequence, hx, path: str, record: bool):
        batch = int(packed.batch_sizes[0])
        hx = self.check_state(hx, batch, packed.data.dtype, unbatched=False)
        if packed.data.dim() != 2 or packed.data.shape[-1] != self.input_size:
            raise InputShapeError(f"packed input must have {self.input_size} features; got {tuple(packed.data.shape)}")
        if path == "fused":
            return self.forward_fused(packed, hx, None, 0)
        padded, lengths = pad_packed_sequence(packed, batch_first=self.batch_first)  # original batch order
        output, state, recorded = self._forward_stack(padded, hx, lengths, record, path)
        output = repack_like(output, lengths, packed, self.batch_first)
        return (output, state, recorded) if record else (output, state)
