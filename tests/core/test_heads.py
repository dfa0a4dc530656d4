"""MePolyHead (the lazy distribution that predicts natural parameters) against numpy: the affine
map with zeros at the constant features, both clip modes and their gradients, the uniform start."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mepoly_dist import BlockMePoly, BlockMePolyFamily, MePoly, MePolyFamily, MePolyHead


F64 = dict(dtype=torch.float64)


def _expected(head, h, constants, clip=None):
    """numpy: u = W h + b, clipped, with a zero inserted at each constant feature's index."""
    u = h.numpy() @ head.linear.weight.detach().numpy().T + head.linear.bias.detach().numpy()
    if clip is not None:
        u = np.clip(u, -clip[1], clip[1]) if clip[0] == "clamp" else clip[1] * np.tanh(u / clip[1])
    for index in sorted(constants):
        u = np.insert(u, index, 0.0, axis=-1)
    return u


@pytest.mark.parametrize("clip", [None, ("clamp", 0.5), ("tanh", 0.5)])
def test_natural_params_are_the_clipped_affine_map_with_a_zero_at_the_constant(clip):
    family = MePolyFamily(2, 3, dtype=torch.float64)  # C(5, 2) = 10 features, the constant first
    head = MePolyHead(4, family, *(() if clip is None else (clip[1], clip[0]))).double()
    h = torch.randn(7, 4, **F64) * 3
    natural_params = head.natural_params(h)
    assert natural_params.shape == (7, math.comb(5, 2))
    np.testing.assert_allclose(natural_params.detach().numpy(), _expected(head, h, [0], clip), rtol=1e-12, atol=1e-12)
    if clip is not None:
        assert float(natural_params.detach().abs().max()) <= clip[1]
    dist = head(h)
    assert isinstance(dist, MePoly) and dist.batch_shape == (7,) and dist.event_shape == (2,)
    torch.testing.assert_close(dist.natural_params, natural_params)


def test_block_families_get_a_zero_at_every_block_constant():
    family = BlockMePolyFamily([1, 2], order=3, dtype=torch.float64)
    head = MePolyHead(5, family).double()
    sizes = [math.comb(3 + 1, 1), math.comb(3 + 2, 2)]  # 4 and 10 features
    assert head.linear.out_features == sum(sizes) - 2
    h = torch.randn(2, 3, 5, **F64)
    np.testing.assert_allclose(head.natural_params(h).detach().numpy(), _expected(head, h, [0, sizes[0]]), rtol=1e-12, atol=1e-12)
    dist = head(h)
    assert isinstance(dist, BlockMePoly) and dist.batch_shape == (2, 3) and dist.event_shape == (3,)


def test_the_clip_modes_gradients():
    """clamp: d lambda / d u = 0 beyond c; tanh: d lambda / d u = 1 - tanh(u / c)^2 everywhere."""
    family = MePolyFamily(1, 2, dtype=torch.float64)
    for mode in ("clamp", "tanh"):
        head = MePolyHead(1, family, lambda_clip=1.0, clip_mode=mode).double()
        with torch.no_grad():
            head.linear.weight.zero_()
            head.linear.bias.copy_(torch.tensor([0.5, 3.0]))
        head.natural_params(torch.zeros(1, **F64)).sum().backward()
        u = np.array([0.5, 3.0])
        expected = np.where(np.abs(u) < 1.0, 1.0, 0.0) if mode == "clamp" else 1 - np.tanh(u) ** 2
        np.testing.assert_allclose(head.linear.bias.grad.numpy(), expected, rtol=1e-12)


def test_zero_init_starts_at_the_uniform_density():
    head = MePolyHead(3, MePolyFamily(2, 6, dtype=torch.float64), zero_init=True).double()
    dist = head(torch.randn(4, 3, **F64))
    torch.testing.assert_close(dist.log_prob(torch.rand(4, 2, **F64) * 2 - 1), torch.full((4,), -math.log(4.0), **F64))
    torch.testing.assert_close(dist.entropy(), torch.full((4,), math.log(4.0), **F64))


def test_state_dict_holds_the_layer_only_and_the_family_follows_the_module():
    head = MePolyHead(3, MePolyFamily(2, 4), validate_args=True)
    assert set(head.state_dict()) == {"linear.weight", "linear.bias"} and head.family.dtype == torch.float32
    head = head.double()
    dist = head(torch.zeros(2, 3, **F64))
    assert dist.natural_params.dtype == torch.float64 and dist._validate_args
    assert "lambda_clip=None, clip_mode='clamp'" in repr(head)


def test_bad_options_name_the_problem():
    family = MePolyFamily(1, 3)
    with pytest.raises(ValueError, match="lambda_clip must be positive"):
        MePolyHead(2, family, lambda_clip=0.0)
    with pytest.raises(ValueError, match="clip_mode"):
        MePolyHead(2, family, lambda_clip=1.0, clip_mode="soft")
    with pytest.raises(TypeError, match="MePolyFamily"):
        MePolyHead(2, "legendre")
