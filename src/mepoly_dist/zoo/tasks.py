"""Where ``mepoly train ENV`` finds its environment: a registry of task families.

A :class:`Task` serves a family of environment ids and knows everything a training run needs from
it: the vectorized environment, the presets and short aliases, the cheap metrics of the learning
curves and the final evaluation with its plots.  :func:`find_task` picks the task of an id in this
order: the tasks registered with :func:`register_task` (most recent first), those that installed
packages declare in the ``mepoly_dist.tasks`` entry-point group, the paper's two built-in
environments, and finally :class:`Task` itself, which runs any gymnasium id.

This is how the ManiSkill integration plugs in, in the spirit of ``torch.distributions``'
``register_kl`` and SB3's ``policy_aliases``: its distribution declares::

    [project.entry-points."mepoly_dist.tasks"]
    maniskill = "mepoly_maniskill.tasks:ManiSkillTask"

and ``mepoly train maniskill/PushCube-v1`` works once it is installed, while nothing in
``mepoly_dist`` imports it.
"""

from __future__ import annotations

import functools
import inspect
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from .envs import BANDIT_ID, SMOOTH_WORLD_ID

__all__ = ["Task", "BanditTask", "SmoothWorldTask", "register_task", "find_task", "registered_tasks", "all_aliases", "all_presets",
           "constructor_keywords", "ENTRY_POINT_GROUP"]

#: the entry-point group in which installed packages declare their :class:`Task` classes
ENTRY_POINT_GROUP = "mepoly_dist.tasks"

#: installable task families by id prefix, named in the error for an id no installed task serves
KNOWN_PLUGINS = {"maniskill/": "the ManiSkill integration: pip install -e integrations/maniskill (see its README)"}


def constructor_keywords(target) -> frozenset[str] | None:
    """The keyword arguments that ``target`` (a class or a function) accepts, or ``None`` if it takes
    any (``**kwargs`` that reach no constructor with a fixed list).

    A class's keywords are those of its ``__init__`` and, while that passes ``**kwargs`` on, of the
    ``__init__`` of the classes after it in the MRO (the ``super().__init__(**kwargs)`` chain of SB3's
    algorithms and policies)."""
    if not isinstance(target, type):
        parameters = inspect.signature(target).parameters.values()
        if any(p.kind is p.VAR_KEYWORD for p in parameters):
            return None
        return frozenset(p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
    names: set[str] = set()
    for cls in target.__mro__:
        if "__init__" not in vars(cls) or cls is object:
            continue
        parameters = list(inspect.signature(vars(cls)["__init__"]).parameters.values())[1:]  # without self
        names.update(p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            return frozenset(names)
    return None


class Task:
    """A family of environments that ``mepoly train`` can run; the base class runs any gymnasium id
    through SB3's ``make_vec_env`` and evaluates with SB3's ``evaluate_policy``.

    Subclasses override what differs: :meth:`matches` (which ids), :meth:`make_vec_env`,
    :attr:`monitor_keywords` (``info`` keys recorded per episode), :meth:`presets` and
    :attr:`default_preset`, :meth:`aliases`, :meth:`env_keywords` (what ``--env-kwargs`` may
    set), :meth:`quick_metrics` (learning curves; a task without them returns ``{}``) and
    :meth:`evaluate` (final metrics and plots).
    """

    #: ``info`` keys that SB3's ``VecMonitor`` writes to the monitor file, per episode
    monitor_keywords: tuple[str, ...] = ()
    #: the preset key used for an id that has no preset of its own
    default_preset = "default"
    #: whether :meth:`quick_metrics` reports anything (then runs record learning curves)
    learning_curves = False

    def matches(self, env_id: str) -> bool:
        """Whether this task serves ``env_id``."""
        return True

    def aliases(self) -> dict[str, tuple[str, dict]]:
        """Short names: ``alias -> (env_id, env_kwargs)``."""
        return {}

    def presets(self) -> dict[str, dict]:
        """Presets of this task's ids, ``env_id -> {policy: preset}``, merged over the application's
        ``presets/ppo.yml``."""
        return {}

    def make_vec_env(self, env_id: str, n_envs: int, seed: int, env_kwargs: dict):
        """The training ``VecEnv`` (without a monitor: the caller adds SB3's ``VecMonitor``)."""
        from stable_baselines3.common.env_util import make_vec_env

        return make_vec_env(env_id, n_envs=n_envs, seed=seed, env_kwargs=env_kwargs)

    def env_keywords(self, env_id: str) -> frozenset[str] | None:
        """The keyword arguments that :meth:`make_vec_env` accepts in ``env_kwargs`` for ``env_id``, or
        ``None`` where that is not known (then ``mepoly train`` passes any on unchecked).

        The base class answers for gymnasium ids: the constructor of the id's entry point plus
        ``gymnasium.make``'s own ``max_episode_steps`` and ``disable_env_checker``.  A task with its
        own :meth:`make_vec_env` answers ``None`` unless it overrides this method too."""
        if type(self).make_vec_env is not Task.make_vec_env:
            return None
        import gymnasium as gym
        from gymnasium.envs.registration import load_env_creator

        if env_id not in gym.registry:
            return None
        entry_point = gym.spec(env_id).entry_point
        names = constructor_keywords(entry_point if callable(entry_point) else load_env_creator(entry_point))
        return None if names is None else names | {"max_episode_steps", "disable_env_checker"}

    def quick_metrics(self, config, policy) -> dict[str, float]:
        """Cheap metrics recorded at every checkpoint (TensorBoard ``eval/*`` and ``eval_curve.csv``)."""
        return {}

    def evaluate(self, config, model, run_dir: Path, title: str, episodes: int, samples: int, seed: int) -> dict[str, Any]:
        """The final metrics of a trained ``model``; may write plots into ``run_dir``."""
        from stable_baselines3.common.evaluation import evaluate_policy
        from stable_baselines3.common.vec_env import VecMonitor

        env = VecMonitor(self.make_vec_env(config.env_id, config.n_envs, 10_000 + seed, config.env_kwargs))
        mean, std = evaluate_policy(model, env, n_eval_episodes=episodes)
        env.close()
        return {"mean_episode_reward": float(mean), "std_episode_reward": float(std)}


class _PaperTask(Task):
    """The paper's environments: one exact id each, the batched numpy ``VecEnv``."""

    env_id = ""
    learning_curves = True

    def matches(self, env_id: str) -> bool:
        return env_id == self.env_id

    def make_vec_env(self, env_id: str, n_envs: int, seed: int, env_kwargs: dict):
        from .envs import make_vec_env

        return make_vec_env(env_id, n_envs=n_envs, seed=seed, monitor=False, **env_kwargs)

    def env_keywords(self, env_id: str) -> frozenset[str] | None:
        """The constructor keywords of the batched VecEnv (``num_envs`` is the run's ``n_envs``)."""
        from .envs.vector import BanditVecEnv, SmoothWorldVecEnv

        vec_env_class = {BANDIT_ID: BanditVecEnv, SMOOTH_WORLD_ID: SmoothWorldVecEnv}[env_id]
        return constructor_keywords(vec_env_class) - {"num_envs"}


class BanditTask(_PaperTask):
    """The manifold bandit (section 5.2): TV to the Boltzmann target, coverage, mean reward and the
    density plot beside the target."""

    env_id = BANDIT_ID

    def aliases(self) -> dict[str, tuple[str, dict]]:
        from .targets import TARGETS

        return {name: (BANDIT_ID, {"target": name}) for name in TARGETS}

    @staticmethod
    def points(config) -> np.ndarray:
        from .envs.bandit import BanditEnv

        return BanditEnv(**config.env_kwargs).points

    def quick_metrics(self, config, policy) -> dict[str, float]:
        from .rollouts import evaluate_bandit_policy

        metrics, _ = evaluate_bandit_policy(policy, self.points(config), config.alpha, num_samples=20_000)
        return {key: metrics[key] for key in ("tv_to_target", "coverage", "mean_reward")}

    def evaluate(self, config, model, run_dir: Path, title: str, episodes: int, samples: int, seed: int) -> dict[str, Any]:
        from .plotting import plot_policy_density
        from .rollouts import evaluate_bandit_policy

        points = self.points(config)
        found, action_samples = evaluate_bandit_policy(model.policy, points, config.alpha, samples, seed)
        np.save(Path(run_dir) / "action_samples.npy", action_samples[:20000].astype(np.float32))
        plot_policy_density(Path(run_dir) / "density.png", model.policy, points, config.alpha, action_samples, title=title)
        return {**found, "alpha": config.alpha, "normalize_advantage": bool(config.hyperparams.get("normalize_advantage", True))}


class SmoothWorldTask(_PaperTask):
    """Smooth World (section 5.1): success rate and goal entropy from the layout's fixed starts, and
    the trajectory fans."""

    env_id = SMOOTH_WORLD_ID

    def aliases(self) -> dict[str, tuple[str, dict]]:
        from .envs.layouts import LAYOUTS

        return {name: (SMOOTH_WORLD_ID, {"layout": name}) for name in LAYOUTS}

    @staticmethod
    def layout(config) -> str:
        from .envs.layouts import DEFAULT_LAYOUT

        return config.env_kwargs.get("layout", DEFAULT_LAYOUT)

    def quick_metrics(self, config, policy) -> dict[str, float]:
        from .rollouts import evaluate_smooth_world_policy

        metrics, _ = evaluate_smooth_world_policy(policy, self.layout(config), episodes=20)
        return {"success_rate": metrics["success_rate"], "goal_entropy": metrics["goal_entropy"]}

    def evaluate(self, config, model, run_dir: Path, title: str, episodes: int, samples: int, seed: int) -> dict[str, Any]:
        from .plotting import plot_trajectory_fan
        from .rollouts import evaluate_smooth_world_policy

        found, paths = evaluate_smooth_world_policy(model.policy, self.layout(config), episodes=episodes, seed=seed)
        plot_trajectory_fan(Path(run_dir) / "trajectories.png", self.layout(config), paths, title=title)
        return found


_REGISTERED: list[Task] = []


def register_task(task: Task) -> Task:
    """Register ``task`` (an instance); it takes precedence over every task registered before it,
    over the entry-point group and over the built-in ones.  Returns ``task``."""
    if not isinstance(task, Task):
        raise TypeError(f"register_task expects a Task instance, got {type(task).__name__}")
    _REGISTERED.insert(0, task)
    return task


@functools.lru_cache(maxsize=None)
def _entry_point_tasks() -> tuple[Task, ...]:
    tasks = []
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        loaded = entry_point.load()
        tasks.append(loaded() if isinstance(loaded, type) else loaded)
    return tuple(tasks)


_BUILT_IN = (BanditTask(), SmoothWorldTask())


def registered_tasks() -> list[Task]:
    """Every task in lookup order (the gymnasium fallback not included)."""
    return [*_REGISTERED, *_entry_point_tasks(), *_BUILT_IN]


def find_task(env_id: str) -> Task:
    """The task that serves ``env_id``: the first of :func:`registered_tasks` that matches it, else
    the gymnasium fallback for ids gymnasium knows.  An id that nothing serves is a ``ValueError``
    that says which integration to install (for a known prefix) or lists the aliases."""
    for task in registered_tasks():
        if task.matches(env_id):
            return task
    for prefix, hint in KNOWN_PLUGINS.items():
        if env_id.startswith(prefix):
            raise ValueError(f"{env_id!r}: {prefix}* environments need {hint}")
    import gymnasium as gym

    if env_id not in gym.registry:
        aliases = sorted(alias for task in registered_tasks() for alias in task.aliases())
        raise ValueError(f"unknown environment {env_id!r}: not an alias ({', '.join(aliases)}) and not a gymnasium id")
    return Task()


def all_aliases() -> dict[str, tuple[str, dict]]:
    """``alias -> (env_id, env_kwargs)`` over every registered task (earlier tasks win)."""
    out: dict[str, tuple[str, dict]] = {}
    for task in reversed(registered_tasks()):
        out.update(task.aliases())
    return out


def all_presets(base: dict) -> dict:
    """``base`` (the application's presets) with every task's presets merged over it."""
    out = dict(base)
    for task in reversed(registered_tasks()):
        out.update(task.presets())
    return out
