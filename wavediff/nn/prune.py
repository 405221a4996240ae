"""Structured channel pruning of a :class:`~wavediff.nn.denoiser.Denoiser`: a narrower network that starts
where the wide one is, for fine-tuning into a faster model.

A residual stack of ``C`` channels has four kinds of channel, each kept or dropped as a whole:

* the residual stream (``C``, shared by every layer: it is summed through all of them),
* each layer's gated channels (``C`` per layer: row ``j`` of the gate half and of the filter half of the
  dilated conv and of the conditioner projection, and column ``j`` of the output projection),
* the skip sum (``C``, summed over the layers),
* the skip projection's outputs (``C``, read by the output projection).

Each channel is scored by the product of the norms of the weights that write it and of those that read
it (what a channel can pass on), and the ``channels`` best of each kind are kept. The score needs no
data: on the bundled vocoder, pruning 96 -> 64 by this kind of score or at random left the network's
output about equally far from the original (`benchmarks/results/session15.md`), and fine-tuning does
the rest. A channel whose weights are all zero scores zero, so pruning away channels that contribute
nothing leaves the function unchanged (the tests build such a network).

Imports only torch.
"""

from __future__ import annotations

import dataclasses

import torch

from .denoiser import Denoiser

__all__ = ["prune_channels"]


def _top(score: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k largest scores, in increasing order (ties: the lower index)."""
    order = sorted(range(score.numel()), key=lambda i: (-float(score[i]), i))
    return torch.tensor(sorted(order[:k]), dtype=torch.long)


@torch.no_grad()
def prune_channels(net: Denoiser, channels: int) -> Denoiser:
    """A copy of ``net`` with ``residual_channels = channels``, keeping the highest-scoring channels of
    each kind (see the module docstring); ``net`` is left unchanged. Everything else (fold, layers,
    dilations, the step embedding, the conditioner's upsampler) is copied as is."""
    if not isinstance(net, Denoiser):
        raise ValueError(f"prune_channels needs a Denoiser, got {type(net).__name__}.")
    cfg = net.config
    c = cfg.residual_channels
    if isinstance(channels, bool) or not isinstance(channels, int) or not 1 <= channels <= c:
        raise ValueError(f"channels must be an int in [1, {c}] (the network has {c}), got {channels!r}.")
    sd = {k: v.detach() for k, v in net.state_dict().items()}  # indexing below copies
    n_layers = len(net.residual_layers)
    norm = lambda w, dims: w.float().pow(2).sum(dims).sqrt().cpu()  # noqa: E731

    # the residual stream: written by the input projection and each layer's residual half, read by each
    # layer's dilated conv
    written = norm(sd["input_projection.weight"], (1, 2))
    read = torch.zeros(c)
    skip_written = torch.zeros(c)
    gated = []
    for i in range(n_layers):
        p = f"residual_layers.{i}."
        w_in = sd[p + "dilated_conv.weight"]  # [2C, C, 3]
        w_out = sd[p + "output_projection.weight"][:, :, 0]  # [2C, C]: rows [residual; skip], columns gated
        read += norm(w_in, (0, 2))
        written += norm(w_out[:c], 1)
        skip_written += norm(w_out[c:], 1)
        into = norm(w_in, (1, 2))  # [2C]
        if p + "conditioner_projection.weight" in sd:
            into = (into.pow(2) + norm(sd[p + "conditioner_projection.weight"], (1, 2)).pow(2)).sqrt()
        gate_in = (into[:c].pow(2) + into[c:].pow(2)).sqrt()  # a gated channel needs its gate and its filter
        gated.append(_top(gate_in * norm(w_out, 0), channels))
    w_skip = sd["skip_projection.weight"][:, :, 0]  # [C out, C in]
    w_final = sd["output_projection.weight"][:, :, 0]  # [out, C]
    stream = _top(written * read, channels)
    skip = _top(skip_written * norm(w_skip, 0), channels)
    final = _top(norm(w_skip, 1) * norm(w_final, 0), channels)

    new = dict(sd)
    new["input_projection.weight"] = sd["input_projection.weight"][stream]
    new["input_projection.bias"] = sd["input_projection.bias"][stream]
    for i, g in enumerate(gated):
        p = f"residual_layers.{i}."
        rows = torch.cat([g, g + c])  # gate j and filter j
        outs = torch.cat([stream, skip + c])  # residual half, then skip half
        new[p + "dilated_conv.weight"] = sd[p + "dilated_conv.weight"][rows][:, stream]
        new[p + "dilated_conv.bias"] = sd[p + "dilated_conv.bias"][rows]
        new[p + "diffusion_projection.weight"] = sd[p + "diffusion_projection.weight"][stream]
        new[p + "diffusion_projection.bias"] = sd[p + "diffusion_projection.bias"][stream]
        if p + "conditioner_projection.weight" in sd:
            new[p + "conditioner_projection.weight"] = sd[p + "conditioner_projection.weight"][rows]
            new[p + "conditioner_projection.bias"] = sd[p + "conditioner_projection.bias"][rows]
        new[p + "output_projection.weight"] = sd[p + "output_projection.weight"][outs][:, g]
        new[p + "output_projection.bias"] = sd[p + "output_projection.bias"][outs]
    new["skip_projection.weight"] = sd["skip_projection.weight"][final][:, skip]
    new["skip_projection.bias"] = sd["skip_projection.bias"][final]
    new["output_projection.weight"] = sd["output_projection.weight"][:, final]

    weight = next(net.parameters())
    small = Denoiser(dataclasses.replace(cfg, residual_channels=channels)).to(weight.device, weight.dtype)
    small.load_state_dict(new, strict=True)  # into parameters of the original's dtype: no rounding
    return small.train(net.training)
