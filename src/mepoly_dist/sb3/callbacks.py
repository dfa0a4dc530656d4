"""``MePolyDiagnostics``: an SB3 callback that logs the MePoly head's own health under ``mepoly/``.

At the end of every rollout it evaluates the policy on (up to ``max_rows``) observations of
that rollout and records, next to SB3's ``train/*`` and ``rollout/*`` keys:

* ``mepoly/entropy_mean``, ``mepoly/entropy_min``: exact entropy of the action density
  (``D log 2`` is the uniform density on the cube, the head's starting point);
* ``mepoly/natural_params_abs_max``: the largest natural-parameter magnitude (compare with
  ``lambda_clip`` when it is set);
* ``mepoly/log_partition_mean``: the mean log-partition :math:`A(\\lambda)`.
"""

from __future__ import annotations

import torch
from stable_baselines3.common.callbacks import BaseCallback

__all__ = ["MePolyDiagnostics"]


class MePolyDiagnostics(BaseCallback):
    def __init__(self, max_rows: int = 256, verbose: int = 0):
        super().__init__(verbose)
        self.max_rows = max_rows

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        buffer = getattr(self.model, "rollout_buffer", None)
        if buffer is None or not hasattr(self.model.policy, "family"):
            return
        observations = buffer.observations.reshape((-1, *buffer.obs_shape))
        index = torch.randperm(observations.shape[0])[: self.max_rows].numpy()
        obs = torch.as_tensor(observations[index], device=self.model.device)
        with torch.no_grad():
            dist = self.model.policy.get_distribution(obs).distribution
            entropy = dist.entropy()
            self.logger.record("mepoly/entropy_mean", float(entropy.mean()))
            self.logger.record("mepoly/entropy_min", float(entropy.min()))
            self.logger.record("mepoly/natural_params_abs_max", float(dist.natural_params.abs().max()))
            self.logger.record("mepoly/log_partition_mean", float(dist.log_partition.mean()))
