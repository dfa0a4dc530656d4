"""The `mepoly fit` main job end to end, and the maximum-entropy fit behind it."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from mepoly_dist.testing import features_ref, gauss_legendre_grid
from mepoly_dist import MePoly, MePolyFamily
from mepoly_dist.zoo import cli, targets
from mepoly_dist.fit import fit_max_entropy, target_moments


def test_cli_fit_two_moons_writes_plot_and_sane_metrics(tmp_path, capsys):
    out = tmp_path / "run"
    cli.main(["fit", "two_moons", "--order", "6", "--samples", "5000", "--out", str(out)])
    png = out / "density.png"
    assert png.is_file() and png.stat().st_size > 10_000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    image = matplotlib.image.imread(png)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 2 * image.shape[0]
    assert image[..., :3].std() > 0.05  # not a blank canvas

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["target"] == "two_moons" and metrics["order"] == 6 and metrics["num_samples"] == 5000
    assert metrics["alpha"] == pytest.approx(0.2)
    for key in ("coverage", "tv_to_target", "mean_reward"):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert math.isfinite(metrics["entropy"]) and metrics["entropy"] < 2 * math.log(2)
    # an order-6 fit of the two-moons Boltzmann target is rough but clearly informative
    assert metrics["tv_to_target"] < 0.5
    assert metrics["coverage"] > 0.5
    uniform_reward = targets.manifold_reward(np.random.default_rng(0).uniform(-1, 1, (20000, 2)), targets.target_points("two_moons")).mean()
    assert metrics["mean_reward"] > uniform_reward

    saved = torch.load(out / "natural_params.pt")
    assert saved["family"]["order"] == 6 and saved["natural_params"].shape == (28,)
    assert "metrics.json" in capsys.readouterr().out


def test_cli_rejects_unknown_target(tmp_path):
    with pytest.raises(SystemExit):
        cli.main(["fit", "spiral", "--out", str(tmp_path)])


def test_max_entropy_fit_matches_the_target_moments():
    # a target inside the family: the fit must recover its parameters (the dual is strictly convex)
    fam = MePolyFamily(2, 4, quadrature="gauss_legendre:40", dtype=torch.float64)
    rng = np.random.default_rng(2)
    lam_true = torch.from_numpy(rng.standard_normal(fam.num_params))
    lam_true[0] = 0.0
    exps = fam.exponents.numpy()
    log_density = lambda x: features_ref(x, exps) @ lam_true.numpy()
    moments = target_moments(log_density, fam)
    # the target moments against an independent (finer) quadrature
    nodes, weights = gauss_legendre_grid(2, 70)
    p = weights * np.exp(log_density(nodes))
    np.testing.assert_allclose(moments.numpy(), (p[:, None] * features_ref(nodes, exps)).sum(0) / p.sum(), atol=1e-10)
    lam = fit_max_entropy(moments, fam)
    fitted = MePoly(lam, fam)
    np.testing.assert_allclose(fitted.moments.numpy(), moments.numpy(), atol=1e-7)
    np.testing.assert_allclose(lam[1:].numpy(), lam_true[1:].numpy(), atol=1e-5)
