"""Geometry and contact choice of the scripted PushT pusher (numpy only, no ManiSkill needed)."""

from __future__ import annotations

import numpy as np
import pytest

from mepoly_maniskill.pusht_expert import TEE_CENTROID, TEE_RADIUS_OF_GYRATION, TPose, TPusher, distance_to_tee, pusht_tee_outline


def test_outline_normals_point_out_of_the_tee():
    points, normals, edges = pusht_tee_outline()
    assert points.shape == normals.shape and edges.shape == (len(points),) and len(set(edges.tolist())) == 8
    assert np.all(distance_to_tee(points + 0.003 * normals) > 0.002)
    assert np.all(distance_to_tee(points - 0.003 * normals) == 0)


def test_centroid_and_radius_of_gyration():
    # bar 0.2 x 0.05 at y = -0.0375, stem 0.05 x 0.15 at y = 0.0625: centroid y = 0.0000375 / 0.0175
    np.testing.assert_allclose(TEE_CENTROID, [0.0, (0.01 * -0.0375 + 0.0075 * 0.0625) / 0.0175], atol=1e-12)
    # against a dense grid of the T's area
    xs, ys = np.meshgrid(np.linspace(-0.1, 0.1, 801), np.linspace(-0.0625, 0.1375, 801))
    grid = np.column_stack([xs.ravel(), ys.ravel()])
    inside = grid[distance_to_tee(grid) == 0]
    np.testing.assert_allclose(inside.mean(axis=0), TEE_CENTROID, atol=2e-4)
    np.testing.assert_allclose(np.sqrt(np.mean(np.sum((inside - inside.mean(axis=0)) ** 2, axis=1))), TEE_RADIUS_OF_GYRATION, rtol=5e-3)


@pytest.mark.parametrize("yaw", [0.0, 1.0, -2.5])
def test_translation_error_picks_a_push_through_the_centroid(yaw):
    pusher = TPusher()
    tee = TPose(0.0, 0.0, yaw)
    goal = TPose(0.1 * np.cos(0.3), 0.1 * np.sin(0.3), yaw)  # move 10 cm, no rotation
    points, normals, _ = pusher.outline
    best = int(np.argmax(pusher.contact_scores(tee, goal)))
    push_direction = tee.rotation @ -normals[best]
    assert push_direction @ np.array([np.cos(0.3), np.sin(0.3)]) > 0.7


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_rotation_error_picks_a_push_with_that_torque(sign):
    pusher = TPusher()
    tee, goal = TPose(0.0, 0.0, 0.0), TPose(0.0, 0.0, sign * 0.8)
    points, normals, _ = pusher.outline
    best = int(np.argmax(pusher.contact_scores(tee, goal)))
    arm, force = points[best] - TEE_CENTROID, -normals[best]
    torque = arm[0] * force[1] - arm[1] * force[0]
    assert np.sign(torque) == sign and abs(torque) > 0.05


def test_actions_stay_in_the_action_box():
    pusher = TPusher()
    goal = TPose(-0.156, -0.1, 5 * np.pi / 3)
    rng = np.random.default_rng(0)
    for _ in range(50):
        tee = TPose(*rng.uniform(-0.3, 0.1, 2), rng.uniform(-np.pi, np.pi))
        action = pusher.act(np.array([*rng.uniform(-0.3, 0.3, 2), rng.uniform(0.0, 0.12)]), tee, goal)
        assert action.shape == (3,) and action.dtype == np.float32 and np.all(np.abs(action) <= 1.0)
