"""Host synchronizations per call do not grow with the batch: the calls that copy a tensor's value
to the host (``Tensor.item``, ``tolist``, ``cpu``, ``numpy``, ``__bool__``, ``__int__``,
``__float__``, ``__index__``) are counted while the normalizer and its backward, ``sample()`` and
the mode run on batches of 8 and of 512 rows of one distribution.

What the count does not see: a boolean-mask index syncs inside torch (its output size).  The mode
compacts its Newton candidates that way once per iteration (at most ``iterations``), and the
sampler once per refinement level and rejection round; those counts follow the hardest row, not
the number of rows."""

from __future__ import annotations

import contextlib

import pytest
import torch

from mepoly_dist import MePoly, MePolyFamily

SYNCING = ("item", "tolist", "cpu", "numpy", "__bool__", "__int__", "__float__", "__index__")


@contextlib.contextmanager
def count_host_syncs():
    counts = {name: 0 for name in SYNCING}
    originals = {name: getattr(torch.Tensor, name) for name in SYNCING}

    def counting(name):
        def wrapper(self, *args, **kwargs):
            counts[name] += 1
            return originals[name](self, *args, **kwargs)

        return wrapper

    for name in SYNCING:
        setattr(torch.Tensor, name, counting(name))
    try:
        yield counts
    finally:
        for name, original in originals.items():
            setattr(torch.Tensor, name, original)


def rows(batch: int, family: MePolyFamily) -> torch.Tensor:
    # smooth rows (the default rule resolves all of them) from one seed: a larger batch only adds rows
    gen = torch.Generator().manual_seed(0)
    return 0.3 * torch.randn(batch, family.num_params, generator=gen)


def normalizer_syncs(batch: int, family: MePolyFamily) -> dict:
    lam = rows(batch, family).requires_grad_()
    x = torch.zeros(batch, family.dim)
    with count_host_syncs() as counts:
        dist = MePoly(lam, family, validate_args=False)
        (dist.log_prob(x) + dist.entropy()).sum().backward()
    return counts


@pytest.mark.parametrize("dim, order", [(2, 8), (3, 4)])
def test_normalizer_syncs_do_not_grow_with_the_batch(dim, order):
    family = MePolyFamily(dim, order)
    normalizer_syncs(2, family)  # the first call builds the family's cached nodes and features
    small, large = normalizer_syncs(8, family), normalizer_syncs(512, family)
    assert small == large, (small, large)
    assert sum(large.values()) <= 4, large


def test_counting_sees_a_host_sync():
    """The counter itself: ``bool`` of a tensor is counted."""
    with count_host_syncs() as counts:
        bool(torch.ones(1) > 0)
        torch.ones(2).tolist()
    assert counts["__bool__"] == 1 and counts["tolist"] == 1


def search_syncs(batch: int, family: MePolyFamily, what: str) -> dict:
    lam = rows(batch, family)
    torch.manual_seed(0)
    with count_host_syncs() as counts:
        dist = MePoly(lam, family, validate_args=False)
        dist.sample() if what == "sample" else dist.mode
    return counts


@pytest.mark.parametrize("what", ["sample", "mode"])
@pytest.mark.parametrize("dim, order", [(2, 8), (2, 14), (3, 4)])
def test_sample_and_mode_syncs_do_not_grow_with_the_batch(dim, order, what):
    family = MePolyFamily(dim, order)
    search_syncs(2, family, what)  # the first call builds the family's cached lattice and grids
    small, large = search_syncs(8, family, what), search_syncs(512, family, what)
    assert small == large, (small, large)
    assert sum(large.values()) <= (6 if what == "sample" else 0), large
