"""``mepoly train maniskill/<TaskId>``: the ManiSkill task family of :mod:`mepoly_dist.zoo.tasks`.

Declared in this distribution's ``mepoly_dist.tasks`` entry-point group, so that installing it is
all it takes; ``mepoly_dist`` never imports this module.  A run trains on :func:`make_vec_env`
(episode success recorded in the monitor file), reports success with sampled actions at every
checkpoint and, at the end, success with the policy's mode and with sampled actions
(:func:`~mepoly_maniskill.evaluation.evaluate_success`).  Presets: ``presets/ppo.yml`` beside this file.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from mepoly_dist.zoo.tasks import Task

__all__ = ["ManiSkillTask", "PREFIX"]

#: environment ids of this family: ``maniskill/<ManiSkill task id>``
PREFIX = "maniskill/"


class ManiSkillTask(Task):
    """ManiSkill 3 tasks by id ``maniskill/<TaskId>``, e.g. ``maniskill/PushCube-v1``."""

    monitor_keywords = ("is_success",)
    default_preset = "maniskill/default"
    learning_curves = True

    def matches(self, env_id: str) -> bool:
        return env_id.startswith(PREFIX)

    def presets(self) -> dict[str, dict]:
        return yaml.safe_load(resources.files("mepoly_maniskill").joinpath("presets/ppo.yml").read_text())

    def make_vec_env(self, env_id: str, n_envs: int, seed: int, env_kwargs: dict):
        from .vec_env import make_vec_env

        return make_vec_env(env_id[len(PREFIX):], n_envs=n_envs, seed=seed, **env_kwargs)

    def success(self, config, policy, episodes: int, seed: int = 10_000, modes=(True, False)) -> dict[str, float]:
        """success_once / success_at_end over ``episodes`` evaluation episodes, with the policy's mode
        (``deterministic=True``, ManiSkill's convention; key suffix ``_mode``) and with sampled
        actions (``_sampled``)."""
        from .evaluation import evaluate_success

        out = {}
        for deterministic in modes:
            tag = "mode" if deterministic else "sampled"
            found = evaluate_success(policy, config.env_id[len(PREFIX):], episodes, seed=seed, n_envs=config.n_envs,
                                     deterministic=deterministic, **config.env_kwargs)
            out.update({f"{key}_{tag}": found[key] for key in ("success_once", "success_at_end", "mean_return", "seconds")})
        return out

    def env_keywords(self, env_id: str) -> frozenset[str] | None:
        """The options of :func:`~mepoly_maniskill.vec_env.make_vec_env` and the keywords of the ManiSkill
        task's class (``None``, unchecked, where that class takes any)."""
        import inspect

        import mani_skill.envs  # noqa: F401  (registers the tasks)
        from mani_skill.utils.registration import REGISTERED_ENVS
        from mepoly_dist.zoo.tasks import constructor_keywords

        from .vec_env import make_vec_env

        task = env_id[len(PREFIX):]
        if task not in REGISTERED_ENVS:
            return None
        # ManiSkill registers a partial of its own make() with gymnasium; the task's class is in its registry
        task_keywords = constructor_keywords(REGISTERED_ENVS[task].cls)
        if task_keywords is None:
            return None
        parameters = inspect.signature(make_vec_env).parameters.values()
        options = {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)} - {"env_id", "n_envs", "seed"}
        return frozenset(options) | (task_keywords - {"num_envs"})  # the run's n_envs

    def quick_metrics(self, config, policy) -> dict[str, float]:
        # sampled actions (as in training): cheap for every head; the final evaluation adds the mode
        return self.success(config, policy, config.eval_episodes, modes=(False,))

    def evaluate(self, config, model, run_dir: Path, title: str, episodes: int, samples: int, seed: int) -> dict[str, Any]:
        # the run's own evaluation size (the ManiSkill presets: 100 episodes)
        return self.success(config, model.policy, config.eval_episodes, seed=10_000 + seed)
