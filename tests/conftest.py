"""Shared configuration of the mepoly_dist test suite.

* Hypothesis: no deadlines (CPU timings on a shared 2-core machine are noisy) and a
  derandomized default profile so that the suite is reproducible; set
  ``MEPOLY_HYPOTHESIS_PROFILE=random`` to explore fresh examples (``explore``: fresh examples
  without shrinking; ``noshrink``: the default examples, failing fast).
* Every test starts from the same torch seed (the sampler draws from torch's global RNG).
* RuntimeWarnings are errors everywhere in the suite (see ``pytest_configure``).
* torch runs single-threaded (``MEPOLY_TEST_THREADS`` overrides): on the 2-core test machines,
  two intra-op threads competing with another busy process made sampling 5x slower.
"""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import HealthCheck, Phase, settings

_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], print_blob=True)
settings.register_profile("default", derandomize=True, **_COMMON)
settings.register_profile("random", derandomize=False, **_COMMON)
# for debugging: fail fast, without shrinking
_NO_SHRINK = [Phase.explicit, Phase.reuse, Phase.generate]
settings.register_profile("noshrink", derandomize=True, phases=_NO_SHRINK, **_COMMON)
settings.register_profile("explore", derandomize=False, phases=_NO_SHRINK, **_COMMON)
settings.load_profile(os.environ.get("MEPOLY_HYPOTHESIS_PROFILE", "default"))
torch.set_num_threads(int(os.environ.get("MEPOLY_TEST_THREADS", "1")))


def pytest_configure(config):
    # RuntimeWarnings are errors, so that the sampler's envelope-violation warning fails tests.
    # (It is attributed to the caller of ``MePoly.sample`` -- stacklevel=3 -- so a filter
    # restricted to mepoly_dist modules would not match it.)
    config.addinivalue_line("filterwarnings", "error::RuntimeWarning")


@pytest.fixture(autouse=True)
def _seed_torch():
    torch.manual_seed(1234)
    yield


@pytest.fixture(params=["cpu", "cuda"])
def device(request) -> torch.device:
    """CPU, and CUDA where this machine has it (the GPU check runs the device tests there)."""
    if request.param == "cuda" and not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    return torch.device(request.param)
