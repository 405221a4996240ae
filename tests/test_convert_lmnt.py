"""lmnt-com/diffwave -> wavediff conversion computes the same ε, and .pt files load safely."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffwave.model import DiffWave
from diffwave.params import AttrDict
from diffwave.params import params as lmnt_default_params

from wavediff import checkpoint as ckpt
from wavediff.convert import (
    LMNT_DEFAULT_INFERENCE_NOISE_SCHEDULE,
    LMNT_DEFAULT_NOISE_SCHEDULE,
    convert_lmnt_state_dict,
    load_lmnt_checkpoint,
)
from wavediff.nn import Denoiser

SMALL = dict(residual_layers=6, residual_channels=16, dilation_cycle_length=3,
             noise_schedule=np.linspace(1e-4, 0.05, 20).tolist())


def lmnt_params(**overrides) -> AttrDict:
    return AttrDict(dict(lmnt_default_params, **overrides))


def random_lmnt_model(params: AttrDict, seed: int = 0) -> DiffWave:
    """lmnt's DiffWave with random weights everywhere, the zero-initialised output layer included."""
    torch.manual_seed(seed)
    model = DiffWave(params)
    with torch.no_grad():
        model.output_projection.weight.normal_(0.0, 0.5)
        model.output_projection.bias.normal_(0.0, 0.1)
        for conv in (model.spectrogram_upsampler.conv1, model.spectrogram_upsampler.conv2):
            conv.weight.normal_(0.0, 0.3)
    return model.eval()


def converted(model: DiffWave, params) -> Denoiser:
    config, state_dict = convert_lmnt_state_dict(model.state_dict(), params)
    ours = Denoiser(config)
    ours.load_state_dict(state_dict, strict=True)
    return ours.eval()


def assert_same_eps(lmnt: DiffWave, ours: Denoiser, batch: int, frames: int, t: torch.Tensor, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    audio = torch.randn(batch, frames * 256, generator=g)
    mel = torch.rand(batch, 80, frames, generator=g)
    with torch.no_grad():
        expected = lmnt(audio, mel, t)  # [B, 1, T]
        got = ours(audio.unsqueeze(1), t, mel)
    assert got.shape == expected.shape
    assert expected.abs().max() > 1e-2  # a real signal, not the zero-init output
    assert (got - expected).abs().max() < 1e-5


@pytest.mark.parametrize("sizes", [SMALL, {}], ids=["small", "default"])
def test_same_eps_as_lmnt(sizes):
    params = lmnt_params(**sizes)
    lmnt = random_lmnt_model(params)
    ours = converted(lmnt, params)
    cfg = ours.config
    assert cfg.residual_layers == params.residual_layers and cfg.residual_channels == params.residual_channels
    assert cfg.dilation_cycle == params.dilation_cycle_length and cfg.max_steps == len(params.noise_schedule)
    assert cfg.cond_channels == 80 and cfg.upsample_factor == 256 and cfg.fold == 1
    assert ours.num_parameters() == sum(p.numel() for p in lmnt.parameters())
    last = cfg.max_steps - 1
    assert_same_eps(lmnt, ours, batch=3, frames=4, t=torch.tensor([0, 5, last]))
    # fractional steps (lmnt's interpolated embedding only broadcasts with batch 1)
    for t in (2.37, last - 0.5):
        assert_same_eps(lmnt, ours, batch=1, frames=3, t=torch.tensor([t]), seed=1)


def test_same_gradients_as_lmnt():
    """Training through the converted model matches lmnt (the in-place ops are autograd-safe)."""
    params = lmnt_params(**SMALL)
    lmnt = random_lmnt_model(params, seed=5)
    ours = converted(lmnt, params)
    g = torch.Generator().manual_seed(2)
    audio, mel = torch.randn(2, 512, generator=g), torch.rand(2, 80, 2, generator=g)
    t = torch.tensor([1, 18])
    lmnt(audio, mel, t).square().sum().backward()
    ours(audio.unsqueeze(1), t, mel).square().sum().backward()
    theirs = {n.replace("spectrogram_upsampler.conv1", "cond_upsampler.stages.0")
               .replace("spectrogram_upsampler.conv2", "cond_upsampler.stages.1"): p.grad
              for n, p in lmnt.named_parameters()}
    for name, p in ours.named_parameters():
        assert p.grad is not None and theirs[name].abs().max() > 0, name
        torch.testing.assert_close(p.grad, theirs[name], atol=1e-5, rtol=1e-4, msg=name)


def lmnt_checkpoint(model: DiffWave, params) -> dict:
    """What lmnt's DiffWaveLearner.state_dict() saves (after one real optimiser step)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-4)
    model(torch.randn(1, 256), torch.rand(1, 80, 1), torch.tensor([1])).sum().backward()
    optimizer.step()
    return {"step": 123, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "params": params, "scaler": {"scale": 65536.0, "growth_factor": 2.0, "_growth_tracker": 0}}


def test_load_lmnt_pt_checkpoint(tmp_path):
    params = lmnt_params(**SMALL, inference_noise_schedule=[1e-4, 1e-2, 0.3])
    lmnt = random_lmnt_model(params, seed=4)
    torch.save(lmnt_checkpoint(lmnt, params), tmp_path / "weights-123.pt")  # params: a pickled AttrDict
    config, state_dict, schedule, inference = load_lmnt_checkpoint(tmp_path / "weights-123.pt")
    assert schedule == params.noise_schedule and inference == [1e-4, 1e-2, 0.3]
    assert config.residual_layers == 6 and config.dilation_cycle == 3 and config.max_steps == 20
    ours = Denoiser(config)
    ours.load_state_dict(state_dict, strict=True)
    assert_same_eps(lmnt.eval(), ours.eval(), batch=2, frames=2, t=torch.tensor([3, 19]))
    assert_same_eps(lmnt, ours, batch=1, frames=2, t=torch.tensor([7.75]))

    # lmnt's model directory layout: <dir>/weights.pt
    model_dir = tmp_path / "model_dir"
    model_dir.mkdir()
    (tmp_path / "weights-123.pt").rename(model_dir / "weights.pt")
    assert load_lmnt_checkpoint(model_dir)[0] == config


def test_converted_checkpoint_round_trips_through_safetensors(tmp_path):
    params = lmnt_params(**SMALL)
    lmnt = random_lmnt_model(params, seed=2)
    torch.save(lmnt_checkpoint(lmnt, params), tmp_path / "weights.pt")
    config, state_dict, schedule, _ = load_lmnt_checkpoint(tmp_path / "weights.pt")
    ours = Denoiser(config)
    ours.load_state_dict(state_dict)
    ckpt.save_pretrained(tmp_path / "converted", ours, {"diffusion": {"betas": schedule}}, "denoiser")
    loaded, saved_config = ckpt.load_model(tmp_path / "converted")
    assert saved_config["diffusion"]["betas"] == schedule
    assert_same_eps(lmnt.eval(), loaded, batch=2, frames=2, t=torch.tensor([0, 13]))


def test_checkpoint_without_params_uses_lmnt_defaults(tmp_path):
    lmnt = random_lmnt_model(lmnt_params(residual_layers=4, residual_channels=8))
    torch.save({"step": 1, "model": lmnt.state_dict()}, tmp_path / "a.pt")
    torch.save(lmnt.state_dict(), tmp_path / "bare.pt")
    for name in ("a.pt", "bare.pt"):
        with pytest.warns(UserWarning, match="default"):
            config, _, schedule, inference = load_lmnt_checkpoint(tmp_path / name)
        assert config.residual_layers == 4 and config.max_steps == 50 and config.dilation_cycle == 10
        assert schedule == np.linspace(1e-4, 0.05, 50).tolist() == list(LMNT_DEFAULT_NOISE_SCHEDULE)
        assert inference == list(LMNT_DEFAULT_INFERENCE_NOISE_SCHEDULE) == lmnt_default_params.inference_noise_schedule


class NotAllowed:
    """A pickled global that weights_only loading must refuse (and never instantiate)."""

    created = 0

    def __setstate__(self, state):
        NotAllowed.created += 1


def test_refuses_other_pickled_objects(tmp_path):
    lmnt = random_lmnt_model(lmnt_params(residual_layers=2, residual_channels=4))
    torch.save({"model": lmnt.state_dict(), "params": NotAllowed()}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="weights_only"):
        load_lmnt_checkpoint(tmp_path / "evil.pt")
    assert NotAllowed.created == 0
    with pytest.raises(ValueError, match="does not exist"):
        load_lmnt_checkpoint(tmp_path / "missing.pt")


def test_conversion_errors():
    params = lmnt_params(residual_layers=3, residual_channels=8)
    sd = random_lmnt_model(params).state_dict()
    with pytest.raises(ValueError, match="residual_layers=5"):
        convert_lmnt_state_dict(sd, lmnt_params(residual_layers=5, residual_channels=8))
    with pytest.raises(ValueError, match="unexpected keys.*extra"):
        convert_lmnt_state_dict({**sd, "extra.weight": torch.zeros(1)}, params)
    without = {k: v for k, v in sd.items() if k != "residual_layers.1.dilated_conv.bias"}
    with pytest.raises(ValueError, match="missing keys.*residual_layers.1.dilated_conv.bias"):
        convert_lmnt_state_dict(without, params)
    with pytest.raises(ValueError, match="input_projection.weight"):
        convert_lmnt_state_dict({"foo": torch.zeros(1)})
    bad = dict(sd)
    bad["residual_layers.2.output_projection.weight"] = torch.zeros(16, 4, 1)
    with pytest.raises(ValueError, match="shape"):
        convert_lmnt_state_dict(bad, params)


def test_ddp_prefix_stored_table_and_unconditional():
    params = lmnt_params(residual_layers=2, residual_channels=8)
    lmnt = random_lmnt_model(params)
    sd = {f"module.{k}": v for k, v in lmnt.state_dict().items()}
    sd["module.diffusion_embedding.embedding"] = lmnt.diffusion_embedding.embedding.clone()  # old persistent buffer
    config, state_dict = convert_lmnt_state_dict(sd)  # no params: max_steps read from the stored table
    assert config.max_steps == 50 and "diffusion_embedding.embedding" not in state_dict
    sd["module.diffusion_embedding.embedding"] = sd["module.diffusion_embedding.embedding"] + 1.0
    with pytest.raises(ValueError, match="sin/cos"):
        convert_lmnt_state_dict(sd)
    # lmnt's unconditional variant has no upsampler and no conditioner projections
    uncond = {k: v for k, v in lmnt.state_dict().items()
              if "spectrogram_upsampler" not in k and "conditioner_projection" not in k}
    config, state_dict = convert_lmnt_state_dict(uncond, dict(params, unconditional=True))
    assert config.cond_channels is None
    Denoiser(config).load_state_dict(state_dict, strict=True)
