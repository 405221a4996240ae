"""Structured channel pruning (`wavediff.nn.prune`, `wavediff prune`)."""
from __future__ import annotations

import json

import pytest
import torch

from wavediff.cli import main
from wavediff.nn import Denoiser, DenoiserConfig
from wavediff.nn.prune import prune_channels

CFG = DenoiserConfig(residual_layers=4, residual_channels=8, dilation_cycle=2, fold=2, cond_channels=5,
                     upsample_factor=4, max_steps=10, embedding_dim=8, embedding_hidden=16)


def _random_net(seed: int = 0) -> Denoiser:
    torch.manual_seed(seed)
    net = Denoiser(CFG).double()
    with torch.no_grad():
        for p in net.parameters():  # every weight nonzero (the output layer starts at zero)
            p.normal_(0, 0.5)
    return net.eval()


def _inputs():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 1, 48, generator=g, dtype=torch.float64)
    cond = torch.randn(2, 5, 12, generator=g, dtype=torch.float64)
    return x, torch.tensor([3, 7]), cond


def test_pruning_away_dead_channels_keeps_the_function():
    """Channels whose outgoing weights are zero contribute nothing: pruning exactly those away (the rest
    score above zero) gives the same network output (to rounding: CPU sampling's gate runs in float32)."""
    net = _random_net()
    c, keep = CFG.residual_channels, 5
    g = torch.Generator().manual_seed(2)
    drop = lambda: torch.randperm(c, generator=g)[: c - keep]  # noqa: E731
    stream, skip, final = drop(), drop(), drop()
    with torch.no_grad():
        for layer in net.residual_layers:
            layer.dilated_conv.weight[:, stream] = 0  # the stream channel is read by no one
            layer.output_projection.weight[:, drop()] = 0  # nor these gated channels
        net.skip_projection.weight[:, skip] = 0
        net.output_projection.weight[:, final] = 0
    x, t, cond = _inputs()
    small = prune_channels(net, keep)
    assert small.config.residual_channels == keep and small.config.residual_layers == CFG.residual_layers
    assert next(small.parameters()).dtype == torch.float64
    torch.testing.assert_close(small(x, t, cond), net(x, t, cond), rtol=1e-5, atol=1e-6)
    assert small.num_parameters() < net.num_parameters()


def test_pruning_to_full_width_is_the_same_network_and_the_input_is_untouched():
    net = _random_net(3)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    same = prune_channels(net, CFG.residual_channels)
    x, t, cond = _inputs()
    torch.testing.assert_close(same(x, t, cond), net(x, t, cond), rtol=0, atol=0)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_pruning_live_channels_changes_the_output_and_keeps_shapes():
    net = _random_net(4)
    small = prune_channels(net, 6)
    x, t, cond = _inputs()
    out, ref = small(x, t, cond), net(x, t, cond)
    assert out.shape == ref.shape and torch.isfinite(out).all()
    assert (out - ref).abs().max() > 1e-3  # a real change: live channels went


@pytest.mark.parametrize("channels", [0, 9, 2.5, True])
def test_bad_widths_are_refused(channels):
    with pytest.raises(ValueError, match=r"channels must be an int in \[1, 8\]"):
        prune_channels(_random_net(), channels)
    with pytest.raises(ValueError, match="needs a Denoiser"):
        prune_channels(torch.nn.Linear(2, 2), 1)


def test_cli_prune_writes_a_loadable_narrower_vocoder(tmp_path, capsys):
    """`wavediff prune` keeps every other section of the checkpoint (schedule, prior gain, mel)."""
    from wavediff.pipelines import Vocoder
    from wavediff.pipelines.vocoder import VocoderConfig

    cfg = VocoderConfig.from_dict({"model": {"residual_layers": 2, "residual_channels": 8, "fold": 4,
                                             "dilation_cycle": 2, "max_steps": 50},
                                   "inference": {"betas": [0.001, 0.05, 0.5]}, "prior": {"gain": 0.7}})
    Vocoder(cfg).save_pretrained(tmp_path / "v")
    assert main(["prune", "--checkpoint", str(tmp_path / "v"), "--channels", "6", "--out", str(tmp_path / "p")]) == 0
    assert "8 -> 6 channels" in capsys.readouterr().out
    a, b = (json.loads((tmp_path / d / "config.json").read_text()) for d in ("v", "p"))
    assert b["model"] == {**a["model"], "residual_channels": 6}
    assert {k: v for k, v in b.items() if k != "model"} == {k: v for k, v in a.items() if k != "model"}
    v = Vocoder.from_pretrained(tmp_path / "p")
    assert v.net.config.residual_channels == 6 and v.config.inference.betas == [0.001, 0.05, 0.5]
    wav = v(torch.zeros(80, 3) - 5, seed=0)
    assert wav.shape == (3 * 256,) and torch.isfinite(wav).all()
    # bad input: one line, exit 2, nothing written
    assert main(["prune", "--checkpoint", str(tmp_path / "v"), "--channels", "12", "--out", str(tmp_path / "q")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "channels must be an int in [1, 8]" in err[0] and not (tmp_path / "q").exists()
    assert main(["prune", "--checkpoint", str(tmp_path / "nothing"), "--channels", "4", "--out", str(tmp_path / "q")]) == 2
    assert "not a checkpoint folder" in capsys.readouterr().err and not (tmp_path / "q").exists()
