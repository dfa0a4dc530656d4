"""Demonstrations generated here, in ManiSkill's own trajectory format.

ManiSkill's hosted demonstration datasets cannot be downloaded on this project's machines, so
``mepoly-maniskill demos ENV_ID -n N --out DIR`` makes them:

* tasks with a ManiSkill motion-planning solution (PushCube-v1, PickCube-v1, StackCube-v1 and
  the rest of ``mani_skill.examples.motionplanning.panda.run.MP_SOLUTIONS``): ManiSkill's own
  ``run`` machinery plans episodes in ``pd_joint_pos`` on ``physx_cpu`` until ``N`` succeed
  (failed ones are discarded, seeds counting up from ``--seed``) and records them with its
  ``RecordEpisode`` wrapper; ManiSkill's ``replay_trajectory`` tool then converts them to the
  target control mode (``pd_ee_delta_pos``) with ``state`` observations, keeping the episodes
  that still succeed after the conversion;
* PushT-v1 (no motion-planning solution): the scripted pusher of
  :mod:`mepoly_maniskill.pusht_expert`, recorded directly in ``pd_ee_delta_pos`` with ``state``
  observations (successful episodes only).

Files follow ManiSkill's layout and naming, so its tools (``replay_trajectory``,
``merge_trajectory``, the baselines' data loaders) and :mod:`mepoly_maniskill.dataset` read them::

    DIR/ENV_ID/motionplanning/trajectory.{h5,json}                                  as planned
    DIR/ENV_ID/motionplanning/trajectory.state.pd_ee_delta_pos.physx_cpu.{h5,json}  converted
    DIR/PushT-v1/scripted/trajectory.state.pd_ee_delta_pos.physx_cpu.{h5,json}

The motion planner (mplib 0.1.1) segfaults under numpy 2: the ``mepoly-maniskill`` distribution pins
``numpy<2``.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = [
    "DemoReport",
    "SCRIPTED_EXPERT_ENV_IDS",
    "convert_trajectory",
    "converted_trajectory_path",
    "generate_demos",
    "motion_planning_env_ids",
    "plan_demos",
]

SIM_BACKEND = "physx_cpu"
TRAJECTORY_NAME = "trajectory"
SCRIPTED_EXPERT_ENV_IDS = ("PushT-v1",)


@dataclass
class DemoReport:
    """What one ``demos`` run made and how long it took."""

    env_id: str
    requested: int
    num_demos: int
    """Successful episodes in the final (converted) file."""
    attempts: int
    """Episodes tried (planned or pushed), failed ones included."""
    generation_seconds: float
    conversion_seconds: float
    trajectory_path: str
    """The final file: ``state`` observations, the target control mode."""
    source_path: str | None = None
    """The motion-planned ``pd_joint_pos`` file the final one was converted from."""

    @property
    def demos_per_second(self) -> float:
        return self.num_demos / max(self.generation_seconds + self.conversion_seconds, 1e-9)

    @property
    def success_rate(self) -> float:
        """Successful episodes per attempt, after conversion."""
        return self.num_demos / max(self.attempts, 1)

    def to_dict(self) -> dict:
        return {**asdict(self), "demos_per_second": self.demos_per_second, "success_rate": self.success_rate}


def motion_planning_env_ids() -> list[str]:
    """Task ids with a ManiSkill motion-planning solution (imports ManiSkill's planner)."""
    from mani_skill.examples.motionplanning.panda.run import MP_SOLUTIONS

    return sorted(MP_SOLUTIONS)


def converted_trajectory_path(source_h5: str | Path, obs_mode: str = "state", control_mode: str = "pd_ee_delta_pos") -> Path:
    """Where ``replay_trajectory`` writes a conversion: ``<name>.<obs_mode>.<control_mode>.<sim_backend>.h5``."""
    source_h5 = Path(source_h5)
    stem = source_h5.name.split(".")[0]
    return source_h5.with_name(f"{stem}.{obs_mode}.{control_mode}.{SIM_BACKEND}.h5")


def _episodes(h5_path: Path) -> list[dict]:
    return json.loads(h5_path.with_suffix(".json").read_text())["episodes"]


def _refuse_to_overwrite(paths: list[Path], overwrite: bool) -> None:
    existing = [str(path) for path in paths if path.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{', '.join(existing)} exist already (pass overwrite=True / --overwrite to replace them)")
    for path in paths:
        path.unlink(missing_ok=True)


def plan_demos(env_id: str, num_demos: int, out_dir: str | Path, seed: int = 0, overwrite: bool = False) -> tuple[Path, int]:
    """Runs ManiSkill's motion-planning solution for ``env_id`` until ``num_demos`` episodes succeed.

    Uses ``mani_skill.examples.motionplanning.panda.run._main`` (the function behind
    ``python -m mani_skill.examples.motionplanning.panda.run --only-count-success``) with seeds
    ``seed, seed + 1, ...``; failed episodes are not saved.

    Returns:
        The trajectory file ``out_dir/env_id/motionplanning/trajectory.h5`` (``pd_joint_pos``,
        no observations) and the number of episodes attempted.
    """
    from mani_skill.examples.motionplanning.panda import run as motion_planning_run

    if env_id not in motion_planning_run.MP_SOLUTIONS:
        raise ValueError(f"{env_id} has no ManiSkill motion-planning solution; those that have: {sorted(motion_planning_run.MP_SOLUTIONS)}")
    record_dir = Path(out_dir)
    planned_h5 = record_dir / env_id / "motionplanning" / f"{TRAJECTORY_NAME}.h5"
    _refuse_to_overwrite([planned_h5, planned_h5.with_suffix(".json")], overwrite)
    # the fields of run.parse_args(), with the values of its command line
    # `-e ENV_ID -n N --only-count-success -b physx_cpu --traj-name trajectory --record-dir DIR`
    run_args = argparse.Namespace(
        env_id=env_id,
        obs_mode="none",
        num_traj=num_demos,
        only_count_success=True,
        reward_mode=None,
        sim_backend=SIM_BACKEND,
        render_mode="rgb_array",
        vis=False,
        save_video=False,
        traj_name=TRAJECTORY_NAME,
        shader="default",
        record_dir=str(record_dir),
        num_procs=1,
    )
    output_h5 = Path(motion_planning_run._main(run_args, proc_id=0, start_seed=seed))
    episodes = _episodes(output_h5)
    attempts = episodes[-1]["episode_seed"] - seed + 1 if episodes else 0
    return output_h5, attempts


def convert_trajectory(source_h5: str | Path, control_mode: str = "pd_ee_delta_pos", obs_mode: str = "state", overwrite: bool = False) -> Path:
    """Converts a trajectory file with ManiSkill's ``replay_trajectory`` tool.

    The same as ``python -m mani_skill.trajectory.replay_trajectory --traj-path SOURCE -o state
    -c pd_ee_delta_pos --save-traj -b physx_cpu``: replays every episode from its seed,
    converting the actions to ``control_mode`` and recording ``obs_mode`` observations; episodes
    that do not succeed after conversion are dropped.

    Returns:
        The converted file, :func:`converted_trajectory_path` of ``source_h5``.
    """
    from mani_skill.trajectory import replay_trajectory

    source_h5 = Path(source_h5)
    target_h5 = converted_trajectory_path(source_h5, obs_mode, control_mode)
    _refuse_to_overwrite([target_h5, target_h5.with_suffix(".json")], overwrite)
    replay_trajectory.main(
        replay_trajectory.Args(
            traj_path=str(source_h5),
            sim_backend=SIM_BACKEND,
            obs_mode=obs_mode,
            target_control_mode=control_mode,
            save_traj=True,
            num_envs=1,
        )
    )
    if not target_h5.exists():
        raise RuntimeError(f"replay_trajectory did not write {target_h5}")
    return target_h5


def generate_demos(
    env_id: str, num_demos: int, out_dir: str | Path, seed: int = 0, control_mode: str = "pd_ee_delta_pos", overwrite: bool = False
) -> DemoReport:
    """Makes ``num_demos`` successful demonstrations of ``env_id`` (see the module doc) and times it.

    For motion-planned tasks the final file can hold fewer than ``num_demos`` episodes: those
    that fail after the control-mode conversion are dropped (``DemoReport.num_demos`` says how
    many remain).
    """
    if env_id in SCRIPTED_EXPERT_ENV_IDS:
        from .pusht_expert import record_pusht_demos

        return record_pusht_demos(num_demos, out_dir, seed=seed, control_mode=control_mode, overwrite=overwrite)
    start = time.perf_counter()
    planned_h5, attempts = plan_demos(env_id, num_demos, out_dir, seed=seed, overwrite=overwrite)
    generation_seconds = time.perf_counter() - start
    start = time.perf_counter()
    converted_h5 = convert_trajectory(planned_h5, control_mode=control_mode, overwrite=overwrite)
    conversion_seconds = time.perf_counter() - start
    return DemoReport(
        env_id=env_id,
        requested=num_demos,
        num_demos=len(_episodes(converted_h5)),
        attempts=attempts,
        generation_seconds=generation_seconds,
        conversion_seconds=conversion_seconds,
        trajectory_path=str(converted_h5),
        source_path=str(planned_h5),
    )
