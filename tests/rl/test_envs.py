"""Smooth World and the manifold bandit: gymnasium/SB3 conformance, layout data, dynamics, batched VecEnv.

Expected values are computed here by hand or by plain numpy (cell counts, a scalar re-implementation
of one Smooth World step, brute-force nearest-point distances), not by calling the code under test.
"""

from __future__ import annotations

import doctest
import importlib
import warnings

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mepoly_dist.zoo.envs as envs
from mepoly_dist.zoo import targets
from mepoly_dist.zoo.envs import BANDIT_ID, SMOOTH_WORLD_ID, bandit, layouts, smooth_world, vector
from mepoly_dist.zoo.envs.bandit import BanditEnv
from mepoly_dist.zoo.envs.layouts import LAYOUTS, Layout
from mepoly_dist.zoo.envs.smooth_world import SmoothWorldEnv
from mepoly_dist.zoo.envs.vector import BanditVecEnv, SmoothWorldVecEnv, make_vec_env

LAYOUT_NAMES = ["two_walls", "three_goals", "four_walls", "tree_in_the_middle", "two_slits", "cshape"]
SIZE = 25


# ------------------------------------------------------------------------------------------
# registration and conformance
# ------------------------------------------------------------------------------------------
def test_gym_make_registers_both_ids_without_time_limit():
    assert envs.BANDIT_ID == "mepoly/Bandit-v0" and envs.SMOOTH_WORLD_ID == "mepoly/SmoothWorld-v0"
    sw = gym.make(SMOOTH_WORLD_ID, layout="two_slits", max_steps=7)
    assert isinstance(sw.unwrapped, SmoothWorldEnv) and sw.unwrapped.layout.name == "two_slits" and sw.unwrapped.max_steps == 7
    assert sw.spec.max_episode_steps is None
    bd = gym.make(BANDIT_ID, target="two_moons")
    assert isinstance(bd.unwrapped, BanditEnv) and bd.unwrapped.target == "two_moons"
    assert bd.spec.max_episode_steps is None


def test_importing_twice_is_silent():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        importlib.reload(envs)
        envs.register_envs()
    assert gym.spec(SMOOTH_WORLD_ID).entry_point == "mepoly_dist.zoo.envs.smooth_world:SmoothWorldEnv"
    assert gym.spec(BANDIT_ID).entry_point == "mepoly_dist.zoo.envs.bandit:BanditEnv"


@pytest.mark.parametrize("env_id, kwargs", [(SMOOTH_WORLD_ID, {}), (SMOOTH_WORLD_ID, {"layout": "two_slits"}), (BANDIT_ID, {}), (BANDIT_ID, {"target": "two_moons"})])
@pytest.mark.parametrize("render_mode", [None, "rgb_array"])
def test_gymnasium_and_sb3_env_checkers(env_id, kwargs, render_mode):
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = gym.make(env_id, render_mode=render_mode, **kwargs)
    check_env(env.unwrapped, skip_render_check=render_mode is None)
    sb3_check_env(env.unwrapped)


def test_docstring_examples():
    for module in (smooth_world, bandit):
        result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
        assert result.attempted > 0 and result.failed == 0, module.__name__


def test_spaces():
    sw, bd = SmoothWorldEnv(), BanditEnv()
    for space, shape in ((sw.observation_space, (2,)), (sw.action_space, (2,)), (bd.observation_space, (1,)), (bd.action_space, (2,))):
        assert isinstance(space, gym.spaces.Box) and space.shape == shape and space.dtype == np.float32
        assert np.all(space.low == -1) and np.all(space.high == 1)


# ------------------------------------------------------------------------------------------
# layouts as data, against hand counts
# ------------------------------------------------------------------------------------------
def _region_sizes(layout: Layout) -> list[int]:
    labels = layout.goal_labels
    return sorted(int((labels == k).sum()) for k in range(layout.num_goals))


def test_layout_names_and_sizes():
    assert list(LAYOUTS) == LAYOUT_NAMES
    for layout in LAYOUTS.values():
        assert layout.size == SIZE
        free = SIZE * SIZE - len(layout.walls) - len(layout.goals) - len(layout.deaths)
        assert len(layout.start_cells) == free
        assert len(layout.eval_starts) >= 1


def test_two_walls_layout():
    layout = LAYOUTS["two_walls"]
    assert len(layout.goals) == 4 * 25 and not layout.walls and not layout.deaths
    assert layout.num_goals == 2 and _region_sizes(layout) == [50, 50]
    assert layout.goal_of((3, 0)) == layout.goal_of((20, 1)) == 0  # bottom band
    assert layout.goal_of((0, 24)) == layout.goal_of((24, 23)) == 1  # top band
    assert layout.goal_of((5, 2)) == -1 and layout.goal_of((5, 22)) == -1
    assert layout.eval_starts == ((2.5, 12.5),)


def test_three_goals_layout():
    layout = LAYOUTS["three_goals"]
    assert layout.deaths == {(x, y) for x in (11, 12, 13) for y in (11, 12, 13)}
    assert len(layout.goals) == 27 and layout.num_goals == 3 and _region_sizes(layout) == [9, 9, 9]
    # raster order of the [y, x] grid: lower left, lower right, top
    assert [layout.goal_of(c) for c in ((7, 7), (17, 7), (12, 18))] == [0, 1, 2]
    for cx, cy in ((12, 18), (7, 7), (17, 7)):
        assert {(cx + dx, cy + dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1)} <= layout.goals
    assert layout.eval_starts == ((12.5, 9.5),)  # the centre is a death cell


def test_four_walls_layout():
    layout = LAYOUTS["four_walls"]
    assert len(layout.goals) == 36 and layout.num_goals == 4 and _region_sizes(layout) == [9, 9, 9, 9]
    ids = {name: layout.goal_of(c) for name, c in {"top": (12, 23), "bottom": (12, 1), "left": (1, 12), "right": (23, 12)}.items()}
    assert ids == {"bottom": 0, "left": 1, "right": 2, "top": 3}
    assert (11, 24) in layout.goals and (13, 22) in layout.goals and (14, 23) not in layout.goals
    np.testing.assert_allclose(layout.goal_centroids, [[12.5, 1.5], [1.5, 12.5], [23.5, 12.5], [12.5, 23.5]])
    assert layout.eval_starts == ((12.5, 12.5),)


def test_tree_in_the_middle_layout():
    layout = LAYOUTS["tree_in_the_middle"]
    assert len(layout.deaths) == 5 * 5 and (13, 10) in layout.deaths and (17, 14) in layout.deaths and (18, 12) not in layout.deaths
    assert len(layout.goals) == 2 * 5 and layout.num_goals == 1
    assert {(23, 10), (24, 14)} <= layout.goals and (22, 12) not in layout.goals and (24, 15) not in layout.goals


def test_two_slits_layout():
    layout = LAYOUTS["two_slits"]
    openings = {4, 5, 6, 7, 17, 18, 19, 20}
    assert len(layout.walls) == 25 - 8 == 17
    assert all((15, y) in layout.walls for y in range(25) if y not in openings)
    assert not any((15, y) in layout.walls for y in openings)
    assert layout.goals == {(24, y) for y in range(25)} and layout.num_goals == 1


def test_cshape_layout():
    layout = LAYOUTS["cshape"]
    # rows 7 and 17 over columns 7..17 (11 cells each) + column 17 over rows 8..16 (9 more)
    assert len(layout.walls) == 11 + 11 + 9 == 31
    assert {(7, 7), (17, 7), (7, 17), (17, 17), (17, 12)} <= layout.walls and (7, 12) not in layout.walls
    assert len(layout.goals) == 25 and layout.num_goals == 1 and (10, 10) in layout.goals and (14, 14) in layout.goals
    assert layout.eval_starts == ((19.5, 12.5),)


def test_layout_validation():
    with pytest.raises(ValueError, match="both walls and goals"):
        Layout("bad", walls=frozenset({(1, 1)}), goals=frozenset({(1, 1)}))
    with pytest.raises(ValueError, match="outside"):
        Layout("bad", goals=frozenset({(25, 0)}))
    with pytest.raises(ValueError, match="goal cell"):
        Layout("bad", goals=layouts.rectangle(0, 2, 0, 2), eval_starts=[(1.5, 1.5)])
    assert layouts.rectangle(1, 3, 2, 2) == {(1, 2), (2, 2), (3, 2)}
    assert len(layouts.square((5, 5))) == 9


@pytest.mark.parametrize("name", ["tree_in_the_middle", "two_slits", "cshape"])
def test_routes_separate_the_start_from_the_goal(name):
    # flood fill (8-connected, so corner-cutting moves count too) from the evaluation start over
    # the cells an agent may enter: without the route cells no goal cell is reachable, and with
    # the cells of any one route it is
    layout = LAYOUTS[name]
    assert len(layout.routes) == 2 and not (layout.routes[0] & layout.routes[1])
    open_cells = {(x, y) for x in range(SIZE) for y in range(SIZE)} - layout.walls - layout.deaths

    def reaches_goal(allowed):
        start = tuple(int(v) for v in layout.eval_starts[0])
        seen, frontier = {start}, [start]
        while frontier:
            x, y = frontier.pop()
            if (x, y) in layout.goals:
                return True
            for dx in (-1, 0, 1):
                for dy in (-1, 0, 1):
                    nxt = (x + dx, y + dy)
                    if nxt in allowed and nxt not in seen:
                        seen.add(nxt)
                        frontier.append(nxt)
        return False

    without_routes = open_cells - layout.routes[0] - layout.routes[1]
    assert not reaches_goal(without_routes)
    for route in layout.routes:
        assert reaches_goal(without_routes | route)


def test_route_of_a_path_is_the_last_route_region_it_enters():
    layout = LAYOUTS["tree_in_the_middle"]  # routes: 0 under the death block (rows 0..9), 1 over it (rows 15..24)
    under = [(2.5, 12.5), (10.0, 5.0), (15.5, 5.0), (23.5, 12.5)]
    over = [(2.5, 12.5), (10.0, 20.0), (15.5, 20.0), (23.5, 12.5)]
    detour = [(2.5, 12.5), (14.2, 8.0), (10.0, 8.0), (10.0, 20.0), (15.5, 20.0), (23.5, 12.5)]
    assert [layout.route_of(p) for p in (under, over, detour)] == [0, 1, 1]
    assert layout.route_of([(2.5, 12.5), (8.0, 12.5)]) == -1
    assert LAYOUTS["four_walls"].route_of(over) == -1 and LAYOUTS["four_walls"].routes == ()
    with pytest.raises(ValueError, match="route 0 must be a non-empty set of free cells"):
        Layout("bad", goals=frozenset({(1, 1)}), routes=(frozenset({(1, 1)}),))
    with pytest.raises(ValueError, match="routes 0 and 1 share cells"):
        Layout("bad", goals=frozenset({(1, 1)}), routes=(layouts.rectangle(3, 4, 3, 3), layouts.rectangle(4, 5, 3, 3)))


def test_unknown_layout_lists_the_six_names():
    with pytest.raises(ValueError) as error:
        SmoothWorldEnv("spiral")
    for name in LAYOUT_NAMES:
        assert name in str(error.value)


# ------------------------------------------------------------------------------------------
# Smooth World dynamics
# ------------------------------------------------------------------------------------------
def _reference_step(layout: Layout, position, action, dt=0.25, max_speed=1.0):
    """One step written from the paper's code semantics, scalar python."""
    vx, vy = (min(max(float(a), -1.0), 1.0) * max_speed for a in action)
    x = min(max(position[0] + vx * dt, 0.0), SIZE - 1e-6)
    y = min(max(position[1] + vy * dt, 0.0), SIZE - 1e-6)
    if (int(x // 1), int(y // 1)) in layout.walls:
        x, y = position
    cell = (int(x // 1), int(y // 1))
    reward = 20.0 if cell in layout.goals else -10.0 if cell in layout.deaths else 0.0
    return (x, y), reward, cell in layout.goals or cell in layout.deaths


def _started(layout="four_walls", position=(12.5, 12.5), **kwargs):
    env = SmoothWorldEnv(layout, **kwargs)
    obs, info = env.reset(seed=0, options={"position": list(position)})
    return env, obs, info


@given(
    layout=st.sampled_from(LAYOUT_NAMES),
    data=st.data(),
    action=st.tuples(st.floats(-3, 3), st.floats(-3, 3)),
)
@settings(max_examples=150)
def test_step_matches_a_scalar_reference(layout, data, action):
    spec = LAYOUTS[layout]
    cell = data.draw(st.sampled_from(sorted(map(tuple, spec.start_cells.tolist()))))
    offset = data.draw(st.tuples(st.floats(0, 0.999), st.floats(0, 0.999)))
    start = (cell[0] + offset[0], cell[1] + offset[1])
    env, _, _ = _started(layout, start)
    obs, reward, terminated, truncated, info = env.step(np.array(action, dtype=np.float32))
    position, ref_reward, ref_terminated = _reference_step(spec, start, np.array(action, dtype=np.float32))
    np.testing.assert_allclose(info["position"], position, rtol=0, atol=1e-12)
    np.testing.assert_allclose(obs, (np.array(position) - 12.5) / 12.5, rtol=0, atol=1e-6)
    assert obs.dtype == np.float32 and env.observation_space.contains(obs)
    assert reward == ref_reward and terminated == ref_terminated and not truncated
    assert info["is_success"] == (reward == 20.0) and (info["goal"] >= 0) == info["is_success"]


def test_free_motion_and_action_clipping():
    env, obs, info = _started()
    np.testing.assert_array_equal(obs, [0.0, 0.0])
    np.testing.assert_array_equal(info["position"], [12.5, 12.5])
    _, reward, terminated, truncated, info = env.step([1.0, -0.5])
    np.testing.assert_allclose(info["position"], [12.75, 12.375])
    assert (reward, terminated, truncated, info["goal"], info["is_success"]) == (0.0, False, False, -1, False)
    _, _, _, _, info = env.step([7.0, -30.0])  # clipped to (1, -1)
    np.testing.assert_allclose(info["position"], [13.0, 12.125])
    env, _, _ = _started(max_speed=2.0, dt=0.5)
    _, _, _, _, info = env.step([0.5, 0.0])
    np.testing.assert_allclose(info["position"], [13.0, 12.5])


def test_world_edges_clip_the_position():
    env, _, _ = _started("three_goals", (0.1, 20.5))
    _, _, _, _, info = env.step([-1.0, 0.0])
    np.testing.assert_array_equal(info["position"], [0.0, 20.5])
    env, _, _ = _started("three_goals", (24.9, 24.9))
    obs, _, _, _, info = env.step([1.0, 1.0])
    np.testing.assert_allclose(info["position"], [25 - 1e-6] * 2, rtol=0, atol=1e-12)
    assert env.observation_space.contains(obs)


def test_walls_block_motion():
    env, _, _ = _started("two_slits", (14.9, 12.5))
    for _ in range(3):
        _, reward, terminated, _, info = env.step([1.0, 0.0])
        np.testing.assert_array_equal(info["position"], [14.9, 12.5])  # (15, 12) is a wall
        assert reward == 0.0 and not terminated
    # a move that slides along the wall is blocked as a whole (the paper code has no sliding)
    _, _, _, _, info = env.step([1.0, 1.0])
    np.testing.assert_array_equal(info["position"], [14.9, 12.5])
    env, _, _ = _started("two_slits", (14.9, 5.5))  # the lower opening
    _, _, _, _, info = env.step([1.0, 0.0])
    np.testing.assert_allclose(info["position"], [15.15, 5.5])
    env, _, _ = _started("cshape", (18.1, 12.5))  # behind the C's back
    _, _, _, _, info = env.step([-1.0, 0.0])
    np.testing.assert_array_equal(info["position"], [18.1, 12.5])


def test_goal_termination_reports_the_region():
    expected = {"bottom": ((12.5, 3.1), (0.0, -1.0), 0), "left": ((3.1, 12.5), (-1.0, 0.0), 1), "right": ((21.9, 12.5), (1.0, 0.0), 2), "top": ((12.5, 21.9), (0.0, 1.0), 3)}
    for start, action, goal in expected.values():
        env, _, _ = _started("four_walls", start)
        _, reward, terminated, truncated, info = env.step(action)
        assert (reward, terminated, truncated, info["goal"], info["is_success"]) == (20.0, True, False, goal, True)


def test_death_termination():
    env, _, _ = _started("three_goals", (12.5, 10.1))
    _, reward, terminated, _, info = env.step([0.0, 1.0])  # 10.35: still free
    assert reward == 0.0 and not terminated
    for _ in range(3):
        _, reward, terminated, _, info = env.step([0.0, 1.0])
        if terminated:
            break
    np.testing.assert_allclose(info["position"], [12.5, 11.1])
    assert (reward, terminated, info["goal"], info["is_success"]) == (-10.0, True, -1, False)


def test_truncation_at_max_steps():
    env, _, _ = _started(max_steps=5)
    for t in range(1, 6):
        _, _, terminated, truncated, _ = env.step([0.0, 0.0])
        assert not terminated and truncated == (t == 5)
    env, _, _ = _started()
    assert env.max_steps == 256
    for t in range(1, 257):
        _, _, _, truncated, _ = env.step(np.zeros(2, dtype=np.float32))
        assert truncated == (t == 256)


def test_reset_options_and_their_errors():
    env = SmoothWorldEnv("three_goals")
    obs, info = env.reset(options={"position": np.array([3.25, 20.75])})
    np.testing.assert_allclose(obs, [(3.25 - 12.5) / 12.5, (20.75 - 12.5) / 12.5], rtol=1e-6)
    np.testing.assert_array_equal(env.position, [3.25, 20.75])
    for position, message in (
        ([25.0, 3.0], "outside the world"),
        ([-0.1, 3.0], "outside the world"),
        ([12.5, 12.5], "death cell"),
        ([7.5, 7.5], "goal cell"),
        ([np.nan, 3.0], "finite"),
        ([1.0, 2.0, 3.0], "two finite numbers"),
    ):
        with pytest.raises(ValueError, match=message):
            env.reset(options={"position": position})
    with pytest.raises(ValueError, match="wall cell"):
        SmoothWorldEnv("cshape").reset(options={"position": [12.5, 7.5]})
    with pytest.raises(ValueError, match="unknown reset option"):
        env.reset(options={"start": [1.0, 1.0]})
    with pytest.raises(ValueError, match="unknown reset option"):
        BanditEnv().reset(options={"position": [0.0, 0.0]})


def test_random_starts_cover_the_free_cells_uniformly():
    env = SmoothWorldEnv("cshape")
    layout = env.layout
    counts = {}
    for seed in range(3000):
        _, info = env.reset(seed=seed)
        cell = tuple(np.floor(info["position"]).astype(int))
        assert cell not in layout.walls and cell not in layout.goals and cell not in layout.deaths
        counts[cell] = counts.get(cell, 0) + 1
    free = 625 - 31 - 25
    assert len(counts) > 0.95 * free  # 3000 draws over 569 cells: about 3 cells expected unseen
    assert max(counts.values()) < 25


def test_bad_actions_raise():
    env, _, _ = _started()
    for action, message in (([np.nan, 0.0], "NaN or infinite"), ([0.0, np.inf], "NaN or infinite"), ([0.0, 0.0, 0.0], "shape"), ([[0.0, 0.0]], "shape"), ("up", "numeric")):
        with pytest.raises(ValueError, match=message):
            env.step(action)
    with pytest.raises(RuntimeError, match="reset"):
        SmoothWorldEnv().step([0.0, 0.0])


def test_determinism_under_seed():
    def rollout(seed):
        env = SmoothWorldEnv("four_walls")
        obs, _ = env.reset(seed=seed)
        rng = np.random.default_rng(5)
        out = [obs]
        for _ in range(50):
            obs, *_ = env.step(rng.uniform(-1, 1, 2))
            out.append(obs)
        return np.stack(out)

    np.testing.assert_array_equal(rollout(3), rollout(3))
    assert not np.array_equal(rollout(3)[0], rollout(4)[0])


# ------------------------------------------------------------------------------------------
# the bandit
# ------------------------------------------------------------------------------------------
def _brute_force_reward(actions, points, sigma=0.1):
    d2 = ((actions[:, None, :] - points[None, :, :]) ** 2).sum(-1).min(1)
    return np.exp(-d2 / (2 * sigma**2))


@pytest.mark.parametrize("target", ["lemniscate", "two_moons"])
def test_bandit_reward_matches_brute_force(target):
    env = BanditEnv(target, target_seed=3)
    np.testing.assert_array_equal(env.points, targets.target_points(target, seed=3))
    rng = np.random.default_rng(0)
    actions = np.concatenate([rng.uniform(-1, 1, (300, 2)), env.points[:20] + rng.normal(0, 0.05, (20, 2)).clip(-0.05, 0.05)]).clip(-1, 1)
    expected = _brute_force_reward(actions, env.points)
    got = []
    for action in actions:
        obs, _ = env.reset()
        np.testing.assert_array_equal(obs, np.zeros(1, dtype=np.float32))
        obs, reward, terminated, truncated, info = env.step(action)
        assert terminated and not truncated and info == {}
        got.append(reward)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(env.reward(actions), expected, rtol=1e-12, atol=1e-300)
    assert expected.max() > 0.5 and expected.min() < 1e-3  # the sample covers both regimes


def test_bandit_custom_target_and_sigma():
    points = np.array([[0.0, 0.0], [0.5, -0.5], [-1.0, 1.0]])
    env = BanditEnv(points, sigma=0.3)
    assert env.target == "custom" and env.sigma == 0.3
    env.reset(seed=0)
    _, reward, *_ = env.step([0.3, 0.4])
    assert reward == pytest.approx(np.exp(-(0.25) / (2 * 0.09)))
    for bad, message in (
        (np.array([[0.0, np.nan]]), "NaN"),
        (np.array([[0.0, 1.5]]), "inside"),
        (np.zeros((3, 3)), "shape"),
        (np.zeros((0, 2)), "shape"),
    ):
        with pytest.raises(ValueError, match=message):
            BanditEnv(bad)
    with pytest.raises(ValueError, match="lemniscate"):
        BanditEnv("spiral")
    with pytest.raises(ValueError, match="sigma"):
        BanditEnv(sigma=0.0)


def test_bandit_rejects_bad_actions():
    env = BanditEnv()
    env.reset(seed=0)
    env.step(np.array([1.0 + 5e-7, -1.0 - 5e-7]))  # float32 round-off is tolerated
    for action, message in (([1.01, 0.0], r"\[-1, 1\]\^2"), ([0.0, -2.0], r"\[-1, 1\]\^2"), ([np.nan, 0.0], "NaN"), ([0.0], "shape")):
        with pytest.raises(ValueError, match=message):
            env.step(action)


# ------------------------------------------------------------------------------------------
# the batched VecEnv
# ------------------------------------------------------------------------------------------
def _compare_step_results(batched, dummy):
    obs_b, rew_b, done_b, info_b = batched
    obs_d, rew_d, done_d, info_d = dummy
    np.testing.assert_array_equal(obs_b, obs_d)
    np.testing.assert_array_equal(rew_b, rew_d)
    np.testing.assert_array_equal(done_b, done_d)
    assert rew_b.dtype == np.float32 and done_b.dtype == bool
    for ib, id_ in zip(info_b, info_d):
        assert set(ib) == set(id_)
        for key in ib:
            np.testing.assert_array_equal(ib[key], id_[key], err_msg=key)


@pytest.mark.parametrize("env_id, kwargs", [(SMOOTH_WORLD_ID, {"layout": "four_walls", "max_steps": 12}), (SMOOTH_WORLD_ID, {"layout": "two_walls", "max_steps": 30}), (BANDIT_ID, {"target": "two_moons"})])
def test_batched_env_equals_dummy_vec_env_of_single_envs(env_id, kwargs):
    n = 6
    batched = make_vec_env(env_id, n_envs=n, seed=11, monitor=False, **kwargs)
    dummy = make_vec_env(env_id, n_envs=n, seed=11, vectorized=False, monitor=False, **kwargs)
    assert isinstance(batched, vector.BatchedVecEnv) and type(dummy).__name__ == "DummyVecEnv"
    np.testing.assert_array_equal(batched.reset(), dummy.reset())
    rng = np.random.default_rng(1)
    dones, successes, time_limits = 0, 0, 0
    for _ in range(80):
        # biased towards +x and slightly beyond the box: episodes end in goals, by truncation, and clipping is exercised
        actions = rng.uniform(-1.0, 1.3, (n, 2)).astype(np.float32) if env_id == SMOOTH_WORLD_ID else rng.uniform(-1, 1, (n, 2)).astype(np.float32)
        result_b, result_d = batched.step(actions), dummy.step(actions)
        _compare_step_results(result_b, result_d)
        dones += result_b[2].sum()
        successes += sum(info.get("is_success", False) for info in result_b[3])
        time_limits += sum(info["TimeLimit.truncated"] for info in result_b[3])
    assert dones > n
    if env_id == SMOOTH_WORLD_ID:  # both ways of ending an episode (and the auto-resets after them) were compared
        assert successes > 0 and time_limits > 0
    for i in range(n):
        assert set(batched.reset_infos[i]) == set(dummy.reset_infos[i])


def test_batched_env_equals_single_env_from_given_starts():
    layout = LAYOUTS["three_goals"]
    rng = np.random.default_rng(2)
    starts = [layout.start_cells[i] + rng.random(2) for i in rng.choice(len(layout.start_cells), 5, replace=False)]
    actions = rng.uniform(-1, 1, (40, 5, 2))
    venv = SmoothWorldVecEnv(5, layout="three_goals")
    venv.set_options([{"position": s} for s in starts])
    obs = venv.reset()
    batched_obs = [obs]
    batched_rewards = []
    for t in range(40):
        obs, rewards, _, _ = venv.step(actions[t])
        batched_obs.append(obs)
        batched_rewards.append(rewards)
    for i, start in enumerate(starts):
        env = SmoothWorldEnv("three_goals")
        obs, _ = env.reset(options={"position": start})
        np.testing.assert_array_equal(obs, batched_obs[0][i])
        for t in range(40):
            obs, reward, terminated, truncated, _ = env.step(actions[t, i])
            if terminated or truncated:  # the VecEnv has auto-reset this env from here on
                np.testing.assert_array_equal(batched_rewards[t][i], reward)
                break
            np.testing.assert_array_equal(obs, batched_obs[t + 1][i])
            assert batched_rewards[t][i] == reward


def test_auto_reset_keeps_the_terminal_observation():
    venv = SmoothWorldVecEnv(3, layout="four_walls", max_steps=4)
    venv.seed(0)
    venv.set_options([{"position": [12.5, 3.1]}, {"position": [12.5, 12.5]}, {"position": [5.5, 5.5]}])
    venv.reset()
    actions = np.array([[0.0, -1.0], [0.0, 0.0], [0.0, 0.0]])
    obs, rewards, dones, infos = venv.step(actions)  # env 0 enters the bottom goal
    assert dones.tolist() == [True, False, False] and rewards.tolist() == [20.0, 0.0, 0.0]
    np.testing.assert_allclose(infos[0]["terminal_observation"], (np.array([12.5, 2.85]) - 12.5) / 12.5, rtol=1e-6)
    assert infos[0]["goal"] == 0 and infos[0]["is_success"] and infos[0]["TimeLimit.truncated"] is False
    assert "terminal_observation" not in infos[1]
    assert not np.allclose(obs[0], infos[0]["terminal_observation"])  # a fresh random start
    np.testing.assert_allclose(venv.reset_infos[0]["position"] / 12.5 - 1, obs[0], rtol=1e-6)
    for _ in range(3):
        obs, rewards, dones, infos = venv.step(np.zeros((3, 2)))
    assert dones.tolist() == [False, True, True]  # envs 1, 2 reach max_steps=4
    assert infos[1]["TimeLimit.truncated"] is True and infos[1]["goal"] == -1
    np.testing.assert_array_equal(infos[2]["terminal_observation"], (np.array([5.5, 5.5], dtype=np.float32) - 12.5) / 12.5)
    # options are used once: the next reset starts at random positions
    assert not np.allclose(venv.reset()[1], [0.0, 0.0])


def test_bandit_vec_env_is_one_step():
    venv = BanditVecEnv(4, target="lemniscate")
    venv.seed(0)
    obs = venv.reset()
    assert obs.shape == (4, 1) and obs.dtype == np.float32 and not obs.any()
    actions = np.array([[0.0, 0.0], [0.5, 0.1], [-1.0, 1.0], [0.9, 0.0]], dtype=np.float32)
    obs, rewards, dones, infos = venv.step(actions)
    assert dones.all() and all("terminal_observation" in info and info["TimeLimit.truncated"] is False for info in infos)
    np.testing.assert_allclose(rewards, _brute_force_reward(actions.astype(np.float64), venv.core.points), rtol=1e-6)
    with pytest.raises(ValueError, match="shape"):
        venv.step(actions[:3])
    with pytest.raises(ValueError, match=r"\[-1, 1\]\^2"):
        venv.step(actions * 1.5)


def test_vec_env_seeding_and_options_follow_sb3():
    venv = SmoothWorldVecEnv(4, layout="two_walls")
    assert venv.seed(5) == [5, 6, 7, 8]
    first = venv.reset()
    assert venv._seeds == [None] * 4
    second = venv.reset()  # the generators continue: new starts
    assert not np.array_equal(first, second)
    venv.seed(5)
    np.testing.assert_array_equal(venv.reset(), first)
    single = SmoothWorldEnv("two_walls")
    for i in range(4):
        np.testing.assert_array_equal(single.reset(seed=5 + i)[0], first[i])
    venv.set_options({"position": [2.5, 12.5]})
    np.testing.assert_array_equal(venv.reset(), np.tile(np.float32([-0.8, 0.0]), (4, 1)))
    with pytest.raises(ValueError, match="unknown reset option"):
        venv.set_options({"speed": 1})
        venv.reset()


def test_vec_env_attributes_and_methods():
    from stable_baselines3.common.monitor import Monitor

    venv = SmoothWorldVecEnv(3, layout="cshape", max_steps=9)
    assert venv.get_attr("max_steps") == [9, 9, 9] and venv.get_attr("layout", indices=[1])[0].name == "cshape"
    assert venv.get_attr("render_mode") == [None] * 3 and venv.has_attr("dt") and not venv.has_attr("nonexistent")
    with pytest.raises(AttributeError):
        venv.get_attr("_background")
    with pytest.raises(AttributeError, match="fixed at construction"):
        venv.set_attr("max_steps", 3)
    with pytest.raises(AttributeError, match="render"):
        venv.env_method("reset")
    assert venv.env_is_wrapped(Monitor) == [False] * 3
    assert BanditVecEnv(2).get_attr("points")[0].shape == (4096, 2)


def test_make_vec_env_variants():
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor

    monitored = make_vec_env(BANDIT_ID, n_envs=4, seed=0)
    assert isinstance(monitored, VecMonitor) and isinstance(monitored.unwrapped, BanditVecEnv)
    monitored.reset()
    _, _, _, infos = monitored.step(np.zeros((4, 2), dtype=np.float32))
    assert all("episode" in info and info["episode"]["l"] == 1 for info in infos)
    sb3 = make_vec_env(SMOOTH_WORLD_ID, n_envs=2, seed=0, vectorized=False, layout="cshape")
    assert isinstance(sb3, DummyVecEnv) and sb3.env_is_wrapped(Monitor) == [True, True]
    assert sb3.get_attr("layout")[0].name == "cshape"
    other = make_vec_env("Pendulum-v1", n_envs=2, seed=0, monitor=False)
    assert isinstance(other, DummyVecEnv) and other.env_is_wrapped(Monitor) == [False, False]
    assert other.reset().shape == (2, 3)
    assert envs.make_vec_env is make_vec_env


def test_sb3_ppo_learns_on_the_batched_env():
    from stable_baselines3 import PPO

    venv = make_vec_env(SMOOTH_WORLD_ID, n_envs=8, seed=0, layout="four_walls", max_steps=16)
    model = PPO("MlpPolicy", venv, n_steps=16, batch_size=64, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=256)
    assert model.num_timesteps == 256 and len(model.ep_info_buffer) > 0


# ------------------------------------------------------------------------------------------
# rendering
# ------------------------------------------------------------------------------------------
def test_smooth_world_rgb_array():
    env = SmoothWorldEnv("two_slits", render_mode="rgb_array")
    env.reset(options={"position": [3.5, 20.5]})
    image = env.render()
    assert image.shape == (250, 250, 3) and image.dtype == np.uint8
    # cell (x, y) occupies rows (24 - y) * 10 .. + 10 and columns x * 10 .. + 10
    np.testing.assert_array_equal(image[(24 - 12) * 10 + 5, 15 * 10 + 5], smooth_world.LAYOUT_COLORS[layouts.WALL])
    np.testing.assert_array_equal(image[(24 - 3) * 10 + 5, 24 * 10 + 5], smooth_world.LAYOUT_COLORS[layouts.GOAL])
    np.testing.assert_array_equal(image[45, 35], smooth_world.AGENT_COLOR)  # the agent at (3.5, 20.5): row (25 - 20.5) * 10
    death = SmoothWorldEnv("three_goals", render_mode="rgb_array")
    death.reset(seed=0)
    np.testing.assert_array_equal(death.render()[(24 - 12) * 10 + 5, 12 * 10 + 5], smooth_world.LAYOUT_COLORS[layouts.DEATH])
    with pytest.warns(UserWarning, match="render_mode"):
        assert SmoothWorldEnv().render() is None
    with pytest.raises(ValueError, match="render_mode"):
        SmoothWorldEnv(render_mode="human")


def test_bandit_rgb_array():
    env = BanditEnv("lemniscate", render_mode="rgb_array")
    env.reset(seed=0)
    before = env.render()
    assert before.shape == (256, 256, 3) and before.dtype == np.uint8 and before.std() > 10
    env.step([0.5, 0.5])
    after = env.render()
    # the action (0.5, 0.5) is at row (1 - 0.5) / 2 * 256 = 64, column 192
    np.testing.assert_array_equal(after[64, 192], bandit.ACTION_COLOR)
    assert (after != before).any(axis=-1).sum() < 100


def test_vec_env_render_tiles_images():
    venv = SmoothWorldVecEnv(5, layout="four_walls", render_mode="rgb_array")
    venv.seed(0)
    venv.reset()
    tiled = venv.render()
    assert tiled.shape == (3 * 250, 2 * 250, 3) and tiled.dtype == np.uint8  # 5 images on a 3 x 2 grid
    assert len(venv.get_images()) == 5 and venv.env_method("render", indices=[2])[0].shape == (250, 250, 3)
    big = BanditVecEnv(40, render_mode="rgb_array")
    big.reset()
    assert big.render().shape == (4 * 256, 4 * 256, 3)  # only the first MAX_RENDER_TILES = 16
    with pytest.warns(UserWarning):
        assert SmoothWorldVecEnv(2).render() is None


def test_draw_layout():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    from mepoly_dist.zoo.plotting import draw_layout

    assert draw_layout(ax, "four_walls", legend=True) is ax
    assert ax.get_xlim() == (0.0, 25.0) and ax.get_ylim() == (0.0, 25.0)
    assert [t.get_text() for t in ax.texts] == ["0", "1", "2", "3"]
    plt.close(fig)
