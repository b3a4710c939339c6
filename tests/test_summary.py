"""SPIVAE.summary: layers, output shapes, parameter counts, receptive field."""

import numpy as np
import pytest
import torch
from _configs import TINY as _TINY

from skspivae import SPIVAE
from skspivae.datasets import make_fbm
from skspivae.nn import SPIVAEModule
from skspivae.nn._reference import ReferenceSPIVAE

TINY = dict(_TINY, decoder="wavenet")
PAPER = SPIVAE(decoder="wavenet")


def _shapes(summary):
    return {layer.name: layer.output_shape for layer in summary.layers}


def test_default_gaussian_model():
    s = SPIVAE().summary(n_timesteps=200)
    shapes = _shapes(s)
    assert shapes["decoder"] == ((128,), (2,))  # kappa, (a, b)
    assert "decoder (GaussianDecoder)" in str(s) and "(B, 128), (B, 2)" in str(s)
    assert s.total_params == sum(p.numel() for p in SPIVAEModule(
        decoder="gaussian", memory=128, normalize_encoder=True).parameters())
    assert sum(layer.n_params for layer in s.layers) == s.total_params
    assert s.receptive_field == 128


def test_default_model_has_the_reference_size():
    s = PAPER.summary()
    assert s.total_params == s.trainable_params == 262_885
    assert sum(layer.n_params for layer in s.layers) == 262_885
    assert s.receptive_field == 32 and s.n_timesteps == 400
    text = str(s)
    assert "Total params: 262,885" in text and "Receptive field: 32" in text
    assert repr(s) == text


def test_shapes_for_another_length_match_the_forward_pass():
    s = PAPER.summary(n_timesteps=100)  # 99 displacements
    shapes = _shapes(s)
    assert s.input_shape == (1, 99)
    assert shapes["encoder.convs.0"] == (16, 97)
    assert shapes["encoder.convs.3"] == (16, 91)
    assert shapes["encoder.dense.2"] == (12,)
    assert shapes["decoder.dense.2"] == (512,)
    assert shapes["decoder.convs.3"] == (6, 99)
    assert shapes["wavenet.input_conv"] == (16, 98)
    assert shapes["wavenet.causal_conv"] == (16, 97)
    assert [shapes[f"wavenet.dilated.{i}"] for i in range(4)] == [
        (32, 95), (32, 91), (32, 83), (32, 67)]
    out = SPIVAEModule()(torch.zeros(1, 1, 99), sample_latent=False)
    assert shapes["wavenet.head.3"] == tuple(out.params.shape[1:]) == (3, 67)


def test_layer_shapes_match_the_unfused_reference_layers():
    length = 120
    reference, seen = ReferenceSPIVAE(), {}
    for name, layer in reference.named_modules():
        if name and not list(layer.children()):
            layer.register_forward_hook(
                lambda m, i, o, name=name: seen.setdefault(name, []).append(
                    tuple(o.shape[1:])))
    reference(torch.zeros(1, 1, length))
    shapes = _shapes(PAPER.summary(n_timesteps=length + 1))
    for i in range(4):
        assert shapes[f"encoder.convs.{i}"] == seen[f"encoder_convs.{i}"][0]
        assert shapes[f"decoder.convs.{i}"] == seen[f"decoder_convs.{i}"][0]
    assert shapes["wavenet.input_conv"] == seen["input_conv"][0]
    assert shapes["wavenet.causal_conv"] == seen["causal_conv"][0]
    for i in range(4):
        assert shapes[f"wavenet.dilated.{i}"] == seen[f"dilated.{i}"][0]
        (skip_ch, n), (res_ch, n_res) = seen[f"skip.{i}"][0], seen[f"res.{i}"][0]
        assert shapes[f"wavenet.skip_res.{i}"] == (skip_ch + res_ch, n) and n == n_res
    assert shapes["wavenet.head.1"] == seen["head1"][0]
    assert shapes["wavenet.head.3"] == seen["head2"][0]


def test_fitted_summary_uses_the_fitted_length_and_leaves_the_model():
    X, _ = make_fbm(32, n_timesteps=40, alpha=[1.0], D=[1e-2], random_state=0)
    est = SPIVAE(max_epochs=1, random_state=0, **TINY).fit(X)
    before = {k: v.clone() for k, v in est.module_.state_dict().items()}
    Z = est.transform(X)
    est.module_.train()
    s = est.summary()
    assert s.n_timesteps == 40 and s.input_shape == (1, 39)
    assert s.total_params == sum(p.numel() for p in est.module_.parameters())
    assert s.receptive_field == est.receptive_field_ == 4
    assert est.module_.training
    assert not est.module_.encoder.convs[0]._forward_hooks
    for k, v in est.module_.state_dict().items():
        assert torch.equal(v, before[k])
    np.testing.assert_array_equal(est.transform(X), Z)
    assert est.summary(n_timesteps=60).input_shape == (1, 59)


def test_increments_input_counts_displacements():
    s = SPIVAE(input_type="increments", **TINY).summary(n_timesteps=50)
    assert s.input_shape == (1, 50)


def test_trainable_count_follows_requires_grad():
    est = SPIVAE(**TINY)
    X, _ = make_fbm(32, n_timesteps=40, alpha=[1.0], D=[1e-2], random_state=0)
    est.set_params(max_epochs=1).fit(X)
    est.module_.encoder.requires_grad_(False)
    s = est.summary()
    frozen = sum(p.numel() for p in est.module_.encoder.parameters())
    assert s.trainable_params == s.total_params - frozen
    assert f"Non-trainable params: {frozen:,}" in str(s)


def test_too_short_length_is_a_clear_error():
    with pytest.raises(ValueError, match="at least 1 displacement"):
        PAPER.summary(n_timesteps=1)
