"""Checkpoint directories: round trip, config-driven construction, and clear errors."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields

import pytest
import torch
from torch import nn

from wavediff import checkpoint as ckpt
from wavediff.nn import Denoiser, DenoiserConfig

EXTRA = {"diffusion": {"schedule": "linear", "steps": 20}, "mel": {"preset": "hifigan"}}


def make_model(seed: int = 0, **kw) -> Denoiser:
    torch.manual_seed(seed)
    cfg = dict(residual_layers=3, residual_channels=8, dilation_cycle=2, cond_channels=5, max_steps=20, fold=2)
    cfg.update(kw)
    model = Denoiser(DenoiserConfig(**cfg))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)  # also makes the zero-initialised output layer non-zero
    return model.eval()


def run(model: Denoiser) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 1, 512, generator=g)
    cond = torch.randn(2, model.config.cond_channels, 2, generator=g)
    with torch.no_grad():
        return model(x, torch.tensor([3.5, 17.0]), cond)


def test_round_trip_identical_outputs(tmp_path):
    model = make_model()
    path = ckpt.save_pretrained(tmp_path / "voc", model, EXTRA, "denoiser")
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "model.safetensors"]
    loaded, config = ckpt.load_model(path)
    assert isinstance(loaded, Denoiser) and not loaded.training
    assert loaded.config == model.config
    assert torch.equal(run(loaded), run(model))
    assert config["model_type"] == "denoiser" and "wavediff_version" in config
    assert config["diffusion"] == EXTRA["diffusion"] and config["mel"] == EXTRA["mel"]
    assert config["model"] == model.config.to_dict()
    on_disk = json.loads((path / "config.json").read_text())
    assert on_disk == config
    sd = ckpt.load_state_dict(path)
    assert sd.keys() == model.state_dict().keys()
    assert "diffusion_embedding.embedding" not in sd  # derived from the config, not stored


def test_built_from_saved_config_not_defaults(tmp_path, monkeypatch):
    model = make_model(residual_layers=5, residual_channels=12, learned_variance=True)
    ckpt.save_pretrained(tmp_path / "m", model, {}, "denoiser")
    # different global defaults must not matter: every size comes from config.json
    names = [f.name for f in fields(DenoiserConfig)]
    defaults = dict(zip(names, DenoiserConfig.__init__.__defaults__))
    defaults.update(residual_layers=60, residual_channels=32, learned_variance=False)
    monkeypatch.setattr(DenoiserConfig.__init__, "__defaults__", tuple(defaults[n] for n in names))
    assert DenoiserConfig().residual_layers == 60
    loaded, _ = ckpt.load_model(tmp_path / "m")
    assert loaded.config.residual_layers == 5 and loaded.config.residual_channels == 12
    assert loaded.config.learned_variance
    assert torch.equal(run(loaded), run(model))


def test_wrapped_model_saves_plain_keys(tmp_path):
    model = make_model()
    ckpt.save_pretrained(tmp_path / "dp", nn.DataParallel(model), {}, "denoiser")
    loaded, _ = ckpt.load_model(tmp_path / "dp")
    assert torch.equal(run(loaded), run(model))


def test_overwrite_and_no_leftovers(tmp_path):
    target = tmp_path / "ck"
    ckpt.save_pretrained(target, make_model(seed=0), {}, "denoiser")
    second = make_model(seed=1)
    ckpt.save_pretrained(target, second, {"note": "second"}, "denoiser")
    loaded, config = ckpt.load_model(target)
    assert config["note"] == "second"
    assert torch.equal(run(loaded), run(second))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]  # temp dirs cleaned up


def test_state_dict_override_saves_ema_weights(tmp_path):
    model, ema = make_model(seed=0), make_model(seed=3)
    ckpt.save_pretrained(tmp_path / "ema", model, {}, "denoiser", state_dict=ema.state_dict())
    loaded, _ = ckpt.load_model(tmp_path / "ema")
    assert torch.equal(run(loaded), run(ema))


def test_model_section_must_agree(tmp_path):
    model = make_model()
    with pytest.raises(ValueError, match="differs"):
        ckpt.save_pretrained(tmp_path / "x", model, {"model": {"residual_layers": 2}}, "denoiser")
    with pytest.raises(ValueError, match="Unknown model_type"):
        ckpt.save_pretrained(tmp_path / "x", model, {}, "no-such-model")
    assert not (tmp_path / "x").exists()


@pytest.fixture
def saved(tmp_path):
    path = ckpt.save_pretrained(tmp_path / "ok", make_model(), EXTRA, "denoiser")
    return path


def test_missing_directory_and_files(tmp_path, saved):
    with pytest.raises(ValueError, match="does not exist"):
        ckpt.load_model(tmp_path / "nope")
    (saved / "model.safetensors").unlink()
    with pytest.raises(ValueError, match="model.safetensors"):
        ckpt.load_model(saved)
    (saved / "config.json").unlink()
    with pytest.raises(ValueError, match="config.json"):
        ckpt.load_config(saved)


@pytest.mark.parametrize(
    "text, message",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"model_type": "denoiser", "model": {}}', "wavediff_version"),
        ('{"wavediff_version": "0", "model_type": "gan", "model": {}}', "Unknown model_type 'gan'"),
        ('{"wavediff_version": "0", "model_type": "denoiser", "model": {"layers": 3}}', "Unknown denoiser config keys"),
    ],
)
def test_bad_config_json(saved, text, message):
    (saved / "config.json").write_text(text)
    with pytest.raises(ValueError, match=message):
        ckpt.load_model(saved)


def test_corrupt_weights(saved):
    (saved / "model.safetensors").write_bytes(b"\x00\x01garbage" * 10)
    with pytest.raises(ValueError, match="safetensors"):
        ckpt.load_state_dict(saved)


def test_weights_not_matching_config(saved):
    config = json.loads((saved / "config.json").read_text())
    config["model"]["residual_channels"] = 16
    (saved / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="do not match"):
        ckpt.load_model(saved)


@dataclass
class TinyConfig:
    width: int = 3

    def to_dict(self):
        return {"width": self.width}

    @classmethod
    def from_dict(cls, d):
        return cls(**d)


class Tiny(nn.Module):
    def __init__(self, config: TinyConfig) -> None:
        super().__init__()
        self.config = config
        self.lin = nn.Linear(config.width, 1)


def test_registry(tmp_path, monkeypatch):
    monkeypatch.setattr(ckpt, "_REGISTRY", dict(ckpt._REGISTRY))
    ckpt.register_model("tiny", Tiny, TinyConfig)
    ckpt.register_model("tiny", Tiny, TinyConfig)  # idempotent
    with pytest.raises(ValueError, match="already registered"):
        ckpt.register_model("tiny", Denoiser, DenoiserConfig)
    assert "tiny" in ckpt.registered_model_types() and "denoiser" in ckpt.registered_model_types()
    model = Tiny(TinyConfig(width=7))
    ckpt.save_pretrained(tmp_path / "t", model, {}, "tiny")
    loaded, config = ckpt.load_model(tmp_path / "t")
    assert isinstance(loaded, Tiny) and loaded.lin.in_features == 7
    assert torch.equal(loaded.lin.weight, model.lin.weight)
    built = ckpt.build_model({"model_type": "tiny", "model": {"width": 2}})
    assert built.lin.in_features == 2
    with pytest.raises(ValueError, match="model_type"):
        ckpt.build_model({"model": {}})


def test_export_half_precision_halves_the_file_and_loads_as_float32(tmp_path):
    model = make_model()
    src = ckpt.save_pretrained(tmp_path / "full", model, {"note": "kept"}, "denoiser")
    dst = ckpt.export_checkpoint(src, tmp_path / "half")
    full_size = (src / ckpt.WEIGHTS_NAME).stat().st_size
    half_size = (dst / ckpt.WEIGHTS_NAME).stat().st_size
    assert 0.45 * full_size < half_size < 0.55 * full_size
    assert all(t.dtype == torch.float16 for t in ckpt.load_state_dict(dst).values())
    assert json.loads((dst / ckpt.CONFIG_NAME).read_text()) == json.loads((src / ckpt.CONFIG_NAME).read_text())
    loaded, _ = ckpt.load_model(dst)
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert b.dtype == torch.float32, name
        torch.testing.assert_close(b, a.half().float(), rtol=0, atol=0, msg=name)
    torch.testing.assert_close(run(loaded), run(model), rtol=0, atol=2e-3)
    with pytest.raises(ValueError, match="floating-point torch.dtype"):
        ckpt.export_checkpoint(src, tmp_path / "bad", dtype=torch.int8)


def test_without_init_skips_the_fills_and_restores_them():
    """Inside ``without_init`` nn.init's fills leave tensors as they are; outside (also after an error) they fill."""
    before = {name: getattr(nn.init, name) for name in ("normal_", "kaiming_uniform_", "zeros_")}
    t = torch.full((4, 3), 7.0)
    with ckpt.without_init():
        assert nn.init.normal_(t) is t and nn.init.kaiming_uniform_(t, a=5 ** 0.5) is t and nn.init.zeros_(t) is t
        assert torch.equal(t, torch.full((4, 3), 7.0))
    with pytest.raises(RuntimeError, match="boom"):
        with ckpt.without_init():
            raise RuntimeError("boom")
    assert {name: getattr(nn.init, name) for name in before} == before
    nn.init.zeros_(t)
    assert torch.equal(t, torch.zeros(4, 3))


@pytest.mark.parametrize("kind", ["vocoder", "acoustic"])
def test_from_pretrained_without_init_loads_every_tensor(tmp_path, kind):
    """Pipelines built without initial weights hold exactly the saved ones (every parameter is loaded)."""
    from wavediff.pipelines.tts import AcousticPipeline
    from wavediff.pipelines.vocoder import Vocoder, VocoderConfig

    torch.manual_seed(0)
    if kind == "vocoder":
        model = Vocoder(VocoderConfig.from_dict({"model": dict(residual_layers=2, residual_channels=8, dilation_cycle=2)}))
        net = model.net
    else:
        from wavediff.text import TextFrontend
        from wavediff.train.acoustic import load_acoustic_config, resolve_acoustic_config

        model = AcousticPipeline(resolve_acoustic_config(load_acoustic_config("tiny"), TextFrontend()))
        net = model.model
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p))  # nothing equal to what a fresh init would draw
    path = model.save_pretrained(tmp_path / kind)
    loaded = type(model).from_pretrained(path, device="cpu")
    loaded_net = loaded.net if kind == "vocoder" else loaded.model
    saved, restored = net.state_dict(), loaded_net.state_dict()
    assert saved.keys() == restored.keys()
    assert all(torch.equal(saved[k], restored[k]) for k in saved)
