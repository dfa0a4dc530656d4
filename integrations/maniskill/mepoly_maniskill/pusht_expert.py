"""A scripted pusher for ManiSkill's PushT-v1, driven by the T's pose, and demos recorded with it.

PushT-v1 has no motion-planning solution in ManiSkill. This expert reads the T block's planar
pose ``(x, y, yaw)`` and the goal's, and repeats: pick a contact point on the T's outline and
push it along the inward normal, then re-plan. The contact is the one whose predicted motion
best points along the remaining error, under the quasi-static pushing model with an ellipsoidal
limit surface (Goyal et al. 1991; Lynch, Maekawa & Tanie 1992): a push with force ``f`` at
``r`` from the centroid moves the block with twist proportional to

.. math::

    (v, \\omega) \\propto (f,\\; (r \\times f) / c^2),

where ``c`` is the T's radius of gyration (uniform pressure on the table). Candidates are scored
by the cosine between ``(f, (r x f) / c)`` and the error ``(\\Delta p, c\\,\\Delta\\theta)``.
Moving to a new contact slides the stick at pushing height when the straight path keeps clear
of the block, else lifts it over the block (the T is 4 cm tall), moves above the pre-contact
point and lowers it; pushing continues while the same contact stays among the best.

:func:`record_pusht_demos` records successful episodes in ``pd_ee_delta_pos`` with ``state``
observations through ManiSkill's ``RecordEpisode`` wrapper, in ManiSkill's file layout.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["TPose", "TPusher", "pusht_tee_outline", "record_pusht_demos", "run_pusht_episode"]

# the T in its actor frame (ManiSkill's push_t.py): the bar 0.2 x 0.05 centred at y = -0.0375,
# the stem 0.05 x 0.15 centred at y = 0.0625, 4 cm thick
_BAR = ((-0.1, 0.1), (-0.0625, -0.0125))
_STEM = ((-0.025, 0.025), (-0.0125, 0.1375))
STICK_RADIUS = 0.008
PUSH_HEIGHT = 0.02
TRAVEL_HEIGHT = 0.1
MAX_TARGET_STEP = 0.1  # pd_ee_delta_pos maps an action of 1 to a 0.1 m target offset


def _area_moments() -> tuple[np.ndarray, float]:
    """Centroid and radius of gyration of the T's area (uniform pressure on the table)."""
    centroid, second_moment, area = np.zeros(2), 0.0, 0.0
    parts = []
    for (x0, x1), (y0, y1) in (_BAR, _STEM):
        part_area = (x1 - x0) * (y1 - y0)
        part_centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
        parts.append((part_area, part_centre, ((x1 - x0) ** 2 + (y1 - y0) ** 2) / 12))
        centroid += part_area * part_centre
        area += part_area
    centroid /= area
    for part_area, part_centre, own in parts:
        second_moment += part_area * (own + np.sum((part_centre - centroid) ** 2))
    return centroid, float(np.sqrt(second_moment / area))


TEE_CENTROID, TEE_RADIUS_OF_GYRATION = _area_moments()


def pusht_tee_outline(spacing: float = 0.01) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points on the T's outline (actor frame), their outward normals and edge numbers.

    Returns ``(points, normals, edges)`` of shapes ``(n, 2)``, ``(n, 2)`` and ``(n,)``, points
    about ``spacing`` apart. Corners are left out (a push there is ill-posed).
    """
    (bx0, bx1), (by0, by1) = _BAR
    (sx0, sx1), (sy0, sy1) = _STEM
    edges = [  # (start, end, outward normal)
        ((bx0, by0), (bx1, by0), (0, -1)),  # bar bottom
        ((bx0, by0), (bx0, by1), (-1, 0)),  # bar left end
        ((bx1, by0), (bx1, by1), (1, 0)),  # bar right end
        ((bx0, by1), (sx0, by1), (0, 1)),  # bar top, left of the stem
        ((sx1, by1), (bx1, by1), (0, 1)),  # bar top, right of the stem
        ((sx0, sy0), (sx0, sy1), (-1, 0)),  # stem left
        ((sx1, sy0), (sx1, sy1), (1, 0)),  # stem right
        ((sx0, sy1), (sx1, sy1), (0, 1)),  # stem end
    ]
    points, normals, edge_numbers = [], [], []
    for edge_number, (start, end, normal) in enumerate(edges):
        start, end = np.array(start, float), np.array(end, float)
        length = np.linalg.norm(end - start)
        count = max(1, int(round(length / spacing)))
        margin = min(0.006, length / 4)
        for s in np.linspace(margin, length - margin, count):
            points.append(start + (end - start) * s / length)
            normals.append(normal)
            edge_numbers.append(edge_number)
    return np.array(points), np.array(normals, float), np.array(edge_numbers)


@dataclass(frozen=True)
class TPose:
    """Planar pose of a T: position (m) and yaw (rad)."""

    x: float
    y: float
    yaw: float

    @classmethod
    def from_actor(cls, actor) -> TPose:
        """Reads a ManiSkill actor's pose (position, quaternion w-x-y-z about z) from its first sub-scene."""
        position = actor.pose.p[0].cpu().numpy()
        w, _, _, z = actor.pose.q[0].cpu().numpy()
        return cls(float(position[0]), float(position[1]), float(2 * np.arctan2(z, w)))

    @property
    def rotation(self) -> np.ndarray:
        cos, sin = np.cos(self.yaw), np.sin(self.yaw)
        return np.array([[cos, -sin], [sin, cos]])

    def to_world(self, points: np.ndarray) -> np.ndarray:
        return points @ self.rotation.T + np.array([self.x, self.y])


def distance_to_tee(points_body: np.ndarray) -> np.ndarray:
    """Distance from points (actor frame, ``(n, 2)``) to the T's area (0 inside)."""
    distances = []
    for (x0, x1), (y0, y1) in (_BAR, _STEM):
        dx = np.maximum(np.maximum(x0 - points_body[:, 0], points_body[:, 0] - x1), 0)
        dy = np.maximum(np.maximum(y0 - points_body[:, 1], points_body[:, 1] - y1), 0)
        distances.append(np.hypot(dx, dy))
    return np.minimum(*distances)


def _wrap_angle(angle: float) -> float:
    return float((angle + np.pi) % (2 * np.pi) - np.pi)


@dataclass
class TPusher:
    """The scripted pusher: ``act(tcp_position, tee_pose, goal_pose)`` gives a ``pd_ee_delta_pos`` action.

    ``phase`` is where the current move stands: ``lift`` / ``travel`` / ``descend`` (over the
    block), ``shift`` (sliding at pushing height) or ``push``; ``contact`` indexes the outline
    point being pushed. The defaults were tuned on PushT-v1 seeds 0-29 (a small grid over
    ``rotation_weight``, ``push_speed``, ``switch_margin``); see the integration README for the
    success rate on other seeds.

    Arguments:
        rotation_weight: weight of the yaw error against the position error, in units of the
            radius of gyration (1 = one radian counts as ``c`` metres).
        push_speed: pushing target offset per step (m) far from the goal; slower near it.
        switch_margin: re-plan the contact when another one scores this much better.
        clearance: gap (m) between the stick and the block where the stick comes down.
        travel_speed_limit: largest action while moving over the block (fast moves tilt the stick).
    """

    rotation_weight: float = 2.0
    push_speed: float = 0.06
    switch_margin: float = 0.35
    clearance: float = 0.025
    travel_speed_limit: float = 0.6
    phase: str = "lift"
    contact: int | None = None
    outline: tuple[np.ndarray, np.ndarray, np.ndarray] = field(default_factory=pusht_tee_outline)

    def reset(self) -> None:
        self.phase, self.contact = "lift", None

    def contact_scores(self, tee: TPose, goal: TPose) -> np.ndarray:
        """Cosine between each contact's predicted twist and the remaining error (higher is better)."""
        points, normals, _ = self.outline
        c = TEE_RADIUS_OF_GYRATION
        rotation = tee.rotation
        forces = -normals @ rotation.T
        arms = (points - TEE_CENTROID) @ rotation.T
        torques = arms[:, 0] * forces[:, 1] - arms[:, 1] * forces[:, 0]
        predicted = np.column_stack([forces, torques / c])
        centroid_error = goal.to_world(TEE_CENTROID[None])[0] - tee.to_world(TEE_CENTROID[None])[0]
        error = np.array([*centroid_error, self.rotation_weight * c * _wrap_angle(goal.yaw - tee.yaw)])
        error_norm = np.linalg.norm(error)
        if error_norm < 1e-9:
            return np.zeros(len(points))
        return predicted @ error / (np.linalg.norm(predicted, axis=1) * error_norm)

    def act(self, tcp_position: np.ndarray, tee: TPose, goal: TPose) -> np.ndarray:
        points, normals, edges = self.outline
        scores = self.contact_scores(tee, goal)
        best = int(np.argmax(scores))
        if self.contact is None or scores[best] > scores[self.contact] + self.switch_margin or scores[self.contact] < 0.3:
            if self.contact != best:
                #  the stick slides at pushing height, backed off the edge; else it goes over the block
                self.contact = best
                self.phase = "shift" if self._clear_path_at_push_height(tcp_position[:2], tee) else "lift"
        contact_world = tee.to_world(points[self.contact][None])[0]
        normal_world = tee.rotation @ normals[self.contact]
        pre_contact = contact_world + normal_world * (STICK_RADIUS + self.clearance)
        tcp_xy, tcp_z = tcp_position[:2], tcp_position[2]

        if self.phase == "shift":
            if np.linalg.norm(tcp_xy - pre_contact) < 0.006:
                self.phase = "push"
            else:
                return self._towards(tcp_position, np.array([*pre_contact, PUSH_HEIGHT]), gain=2.0)
        if self.phase == "lift":
            if tcp_z > TRAVEL_HEIGHT - 0.02:
                self.phase = "travel"
            else:
                return self._towards(tcp_position, np.array([*tcp_xy, TRAVEL_HEIGHT + 0.02]), gain=2.0)
        if self.phase == "travel":
            if np.linalg.norm(tcp_xy - pre_contact) < 0.006:
                self.phase = "descend"
            else:
                return self._towards(tcp_position, np.array([*pre_contact, TRAVEL_HEIGHT]), gain=2.0, limit=self.travel_speed_limit)
        if self.phase == "descend":
            if tcp_z < PUSH_HEIGHT + 0.01:
                self.phase = "push"
            else:
                return self._towards(tcp_position, np.array([*pre_contact, PUSH_HEIGHT - 0.01]), gain=np.array([1.0, 1.0, 2.0]))
        # push: aim past the contact point along the inward normal, slower near the goal
        centroid_distance = np.linalg.norm(goal.to_world(TEE_CENTROID[None])[0] - tee.to_world(TEE_CENTROID[None])[0])
        yaw_distance = abs(_wrap_angle(goal.yaw - tee.yaw)) * TEE_RADIUS_OF_GYRATION
        speed = float(np.clip(2.0 * (centroid_distance + yaw_distance), 0.006, self.push_speed))
        target = contact_world - normal_world * (speed - STICK_RADIUS)
        return self._towards(tcp_position, np.array([*target, PUSH_HEIGHT]))

    def _clear_path_at_push_height(self, tcp_xy: np.ndarray, tee: TPose) -> bool:
        """Whether the stick can slide to the pre-contact point at pushing height, ``clearance`` off the block."""
        points, normals, _ = self.outline
        pre_contact_body = points[self.contact] + normals[self.contact] * (STICK_RADIUS + self.clearance)
        tcp_body = (tcp_xy - np.array([tee.x, tee.y])) @ tee.rotation
        path = tcp_body + np.linspace(0, 1, 25)[:, None] * (pre_contact_body - tcp_body)
        return bool(np.all(distance_to_tee(path[2:]) > STICK_RADIUS + 0.6 * self.clearance))

    @staticmethod
    def _towards(tcp_position: np.ndarray, target: np.ndarray, gain: float | np.ndarray = 1.0, limit: float = 1.0) -> np.ndarray:
        return np.clip(gain * (target - tcp_position) / MAX_TARGET_STEP, -limit, limit).astype(np.float32)


def run_pusht_episode(env, pusher: TPusher, seed: int, max_steps: int) -> tuple[bool, int]:
    """Runs one episode of ``env`` (PushT-v1, ``pd_ee_delta_pos``) with ``pusher`` until success or ``max_steps``.

    Returns ``(success, steps)``.
    """
    env.reset(seed=seed)
    pusher.reset()
    base = env.unwrapped
    goal = TPose.from_actor(base.goal_tee)
    for step in range(1, max_steps + 1):
        tcp_position = base.agent.tcp.pose.p[0].cpu().numpy()
        action = pusher.act(tcp_position, TPose.from_actor(base.tee), goal)
        _, _, _, _, info = env.step(action)
        if bool(info["success"]):
            return True, step
    return False, max_steps


def record_pusht_demos(
    num_demos: int,
    out_dir: str | Path,
    seed: int = 0,
    control_mode: str = "pd_ee_delta_pos",
    max_steps: int = 150,
    max_attempts: int | None = None,
    overwrite: bool = False,
):
    """Records ``num_demos`` successful PushT-v1 episodes of :class:`TPusher` (seeds ``seed, seed + 1, ...``).

    Writes ``out_dir/PushT-v1/scripted/trajectory.state.<control_mode>.physx_cpu.{h5,json}``
    with ManiSkill's ``RecordEpisode`` (failed episodes are discarded) and returns a
    :class:`mepoly_maniskill.demos.DemoReport`. Stops after ``max_attempts`` episodes
    (default ``20 * num_demos``) even when fewer succeeded.
    """
    import gymnasium as gym
    import mani_skill.envs  # noqa: F401
    from mani_skill.utils.wrappers.record import RecordEpisode

    from .demos import SIM_BACKEND, TRAJECTORY_NAME, DemoReport, _refuse_to_overwrite

    if control_mode != "pd_ee_delta_pos":
        raise ValueError("the PushT expert acts in pd_ee_delta_pos only")
    env_id = "PushT-v1"
    output_dir = Path(out_dir) / env_id / "scripted"
    trajectory_name = f"{TRAJECTORY_NAME}.state.{control_mode}.{SIM_BACKEND}"
    h5_path = output_dir / f"{trajectory_name}.h5"
    _refuse_to_overwrite([h5_path, h5_path.with_suffix(".json")], overwrite)
    env = gym.make(env_id, obs_mode="state", control_mode=control_mode, sim_backend=SIM_BACKEND, max_episode_steps=max_steps)
    env = RecordEpisode(
        env,
        output_dir=str(output_dir),
        trajectory_name=trajectory_name,
        save_video=False,
        source_type="scripted",
        source_desc="mepoly_maniskill.pusht_expert.TPusher: quasi-static pushing driven by the T's pose",
        record_reward=False,
        save_on_reset=False,
    )
    pusher = TPusher()
    max_attempts = max_attempts if max_attempts is not None else 20 * num_demos
    successes = attempts = 0
    start = time.perf_counter()
    while successes < num_demos and attempts < max_attempts:
        success, _ = run_pusht_episode(env, pusher, seed + attempts, max_steps)
        attempts += 1
        env.flush_trajectory(save=success)
        successes += int(success)
    env.close()
    return DemoReport(
        env_id=env_id,
        requested=num_demos,
        num_demos=successes,
        attempts=attempts,
        generation_seconds=time.perf_counter() - start,
        conversion_seconds=0.0,
        trajectory_path=str(h5_path),
    )
