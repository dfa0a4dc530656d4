"""The Smooth World benchmark's reports (:mod:`mepoly_dist.zoo.benchmark.smoothworld`, ``_sweep`` and
``_split``): records of runs from different sessions tabulated together, from run directories or
from a compacted records table, the summary over seeds and the target verdicts."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import scipy.stats

from mepoly_dist.zoo.benchmark import smoothworld, smoothworld_split, smoothworld_sweep


def _metrics(layout: str, method: str, seed: int, counts: list[int], episodes: int = 100) -> dict:
    entropy = float(scipy.stats.entropy(counts) / np.log(len(counts))) if len(counts) > 1 else 0.0  # over the goals reached
    success = sum(counts) / episodes
    start = dict(start=[12.5, 12.5], success_rate=success, goal_counts=counts, goal_entropy=entropy, mean_length=30.0)
    return dict(env_id="mepoly/SmoothWorld-v0", layout=layout, policy=method, seed=seed, num_timesteps=1024, train_seconds=1.0,
                episodes_per_start=episodes, starts=[start], success_rate=success, goal_entropy=entropy)


def _write_record(root: Path, layout: str, method: str, seed: int, counts: list[int], late: list[float]) -> dict:
    run = root / f"{layout}__{method}__{seed}"
    run.mkdir(parents=True)
    metrics = _metrics(layout, method, seed, counts)
    (run / "metrics.json").write_text(json.dumps(metrics))
    with (run / "eval_curve.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["timesteps", "success_rate", "goal_entropy"])
        writer.writerows([(512, 0.5, 0.0), (1024, 1.0, 0.3)])
    with (run / "checkpoint_goal_eval.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["timesteps", "episodes", "success_rate", "goal_entropy"])
        # an evaluation with another episode count, which the late entropy must not mix in
        writer.writerow([4096, 20, 1.0, 0.99])
        writer.writerows([(1024 * (i + 1), 100, 1.0, h) for i, h in enumerate(late)])
    return metrics


def test_summary_and_verdicts_from_records_of_another_session(tmp_path):
    records, out = tmp_path / "records", tmp_path / "out"
    runs = {
        ("four_walls", "mepoly", 0): ([40, 26, 23, 11], [0.9, 0.8, 0.7]),
        ("four_walls", "mepoly", 1): ([7, 92, 0, 1], [0.2, 0.3, 0.1]),
        ("four_walls", "gmm", 0): ([25, 22, 36, 17], [0.9, 0.95, 1.0]),
        ("four_walls", "gmm", 1): ([50, 50, 0, 0], [0.5, 0.5, 0.5]),
        ("two_walls", "mepoly", 0): ([42, 58], [1.0, 0.9, 0.8]),
        ("two_walls", "mepoly", 1): ([50, 43], [0.7, 0.7, 0.7]),  # success 0.93: the mean over seeds counts
        ("two_walls", "gmm", 0): ([87, 13], [0.5, 0.6, 0.7]),
        ("two_walls", "gmm", 1): ([100, 0], [0.0, 0.0, 0.0]),
    }
    metrics = {key: _write_record(records, *key, counts, late) for key, (counts, late) in runs.items()}
    smoothworld.main(["--report-only", "--runs-dir", str(records), "--out", str(out), "--name", "t", "--late", "2",
                      "--layouts", "four_walls", "two_walls", "three_goals", "--methods", "mepoly", "gmm", "--seeds", "0", "1"])
    text = (out / "t.md").read_text()
    # records only, no model: no figure of bare layouts, and the report says why
    assert not list(out.glob("*.png")) and "No figures: none of these runs has a saved model" in text

    # the late entropy of each run: the mean of its last two 100-episode checkpoint evaluations
    late = {key: float(np.mean(values[-2:])) for key, (_, values) in runs.items()}
    assert f"{np.mean([0.8, 0.7]):.2f} [0.70, 0.80]" in text
    summary = smoothworld.summarize(metrics, late)
    for (layout, method), v in summary.items():
        keys = [k for k in runs if k[:2] == (layout, method)]
        assert v["seeds"] == [0, 1]
        assert v["entropy"] == pytest.approx(np.mean([metrics[k]["goal_entropy"] for k in keys]))
        assert v["success_min"] == pytest.approx(min(metrics[k]["success_rate"] for k in keys))
        assert v["late"] == pytest.approx(np.mean([late[k] for k in keys]))
        values = [metrics[k]["goal_entropy"] for k in keys]
        assert v["entropy_se"] == pytest.approx(np.std(values, ddof=1) / np.sqrt(2))
        row = f"| {layout} | {method} | 2 | {v['success']:.2f} ± {v['success_se']:.2f} [{v['success_min']:.2f}] | {v['entropy']:.2f} ± {v['entropy_se']:.2f} "
        assert row in text

    verdicts = {line.split(":")[0]: line for line in smoothworld.target_verdicts(summary)}
    # four_walls: MePoly's mean (0.8467 + 0.2222) / 2 = 0.53 is below GMM's (0.9753 + 0.5) / 2 = 0.74, but two seeds
    # this far apart (standard errors 0.31 and 0.24) cannot separate them
    assert verdicts["four_walls"].startswith("four_walls: within the noise") and "gmm 0.74 ± 0.24 (within the noise)" in verdicts["four_walls"]
    # two_walls: MePoly's mean success (1.00 + 0.93) / 2 passes although one seed's does not
    assert summary[("two_walls", "mepoly")]["success"] == pytest.approx(0.965)
    assert verdicts["three_goals"].startswith("three_goals: not measured")
    for line in verdicts.values():
        assert line in text
    assert "ranked only where the difference of the means exceeds 2 standard errors" in text


def test_route_entropy_of_the_single_goal_layouts(tmp_path):
    records, out = tmp_path / "records", tmp_path / "out"
    routes = {0: [30, 70], 1: [100, 0], 2: [50, 50]}
    for seed, counts in routes.items():
        metrics = _metrics("tree_in_the_middle", "mepoly", seed, [sum(counts)])
        h = float(scipy.stats.entropy(counts, base=2))
        metrics["starts"][0].update(route_counts=counts, route_entropy=h)
        metrics["route_entropy"] = h
        run = records / f"tree_in_the_middle__mepoly__{seed}"
        run.mkdir(parents=True)
        (run / "metrics.json").write_text(json.dumps(metrics))
    (records / "tree_in_the_middle__gmm__0").mkdir()  # a run from before route counts: no route entropy
    (records / "tree_in_the_middle__gmm__0" / "metrics.json").write_text(json.dumps(_metrics("tree_in_the_middle", "gmm", 0, [90])))
    smoothworld.main(["--report-only", "--runs-dir", str(records), "--out", str(out), "--name", "r", "--late", "0",
                      "--layouts", "tree_in_the_middle", "--methods", "mepoly", "gmm", "--seeds", "0", "1", "2"])
    text = (out / "r.md").read_text()
    h = [float(scipy.stats.entropy(c, base=2)) for c in routes.values()]  # 0.881, 0, 1
    assert "[30, 70] (0.88)" in text and "[100, 0] (0.00)" in text and "[50, 50] (1.00)" in text
    assert f"| {np.mean(h):.2f} [0.00, 1.00] (3) |" in text
    assert "| tree_in_the_middle | gmm | 1 | 0.90 [0.90] | 0.00 [0.00, 0.00] | - | - |" in text


def test_verdicts_rank_only_outside_the_noise():
    def entry(entropy, se, success=1.0, seeds=(0, 1, 2)):
        return dict(seeds=list(seeds), success=success, success_se=0.0, success_min=success, entropy=entropy, entropy_se=se,
                    entropy_min=entropy, entropy_max=entropy, late=None, late_seeds=0)

    def verdict(mepoly, *others, layout="four_walls"):
        summary = {(layout, "mepoly"): mepoly, **{(layout, f"m{i}"): other for i, other in enumerate(others)}}
        return smoothworld.target_verdicts(summary, layouts=[layout])[0]

    # 0.9 vs 0.5 with standard errors 0.05: the difference 0.4 exceeds 2 * hypot(0.05, 0.05) = 0.14
    assert verdict(entry(0.9, 0.05), entry(0.5, 0.05)).startswith("four_walls: yes")
    assert verdict(entry(0.9, 0.05), entry(0.5, 0.05), entry(0.85, 0.05)).startswith("four_walls: within the noise")
    assert verdict(entry(0.4, 0.05), entry(0.9, 0.05)).startswith("four_walls: no")
    assert "m0 0.50 ± 0.05 (higher)" in verdict(entry(0.9, 0.05), entry(0.5, 0.05))
    # the highest entropy, outside the noise, but a success rate below 0.95
    assert verdict(entry(0.9, 0.05, success=0.94), entry(0.0, 0.0)).startswith("four_walls: no")
    # one seed: no standard error, no ranking
    assert verdict(entry(0.9, float("nan"), seeds=[0]), entry(0.5, float("nan"), seeds=[0])).startswith("four_walls: unknown noise")
    line = verdict(entry(0.9, 0.05), entry(0.0, 0.0, seeds=(0, 1)))
    assert line.endswith("the methods' seeds differ (m0 [0, 1])")
    assert smoothworld.target_verdicts({("two_walls", "mepoly"): entry(0.5, 0.1)}, layouts=["two_walls"])[0].startswith(
        "two_walls: not measured")


def test_mean_se_and_compare_means_against_scipy():
    from scipy import stats

    from mepoly_dist.zoo.benchmark.results import compare_means, format_mean_se, mean_se

    values = [0.81, 0.91, 0.62, 0.22, 0.75]
    mean, se = mean_se(values)
    assert mean == pytest.approx(np.mean(values)) and se == pytest.approx(stats.sem(values))
    assert format_mean_se(values) == f"{np.mean(values):.2f} ± {stats.sem(values):.2f}" and format_mean_se([0.5]) == "0.50 (1 seed)"
    assert compare_means((0.6, 0.05), (0.4, 0.05)) == "higher" and compare_means((0.4, 0.05), (0.6, 0.05)) == "lower"
    assert compare_means((0.6, 0.1), (0.5, 0.1)) == "within the noise"
    assert compare_means((0.6, float("nan")), (0.5, 0.1)) == "unknown noise"
    with pytest.raises(ValueError, match="at least one value"):
        mean_se([])


def test_figures_of_a_run_with_a_model(tmp_path):
    """A finished run with a saved model gets its panel in both figures, the trajectory fans and
    the drift field (a tiny MePoly, 1024 steps); a panel without a model stays empty."""
    from mepoly_dist.zoo.cli import main as mepoly

    runs, out = tmp_path / "runs", tmp_path / "out"
    mepoly(["train", "two_walls", "--steps", "1024", "--n-envs", "32", "--hp", "n_steps=32", "n_epochs=1",
            "--policy-kwargs", "order=4", "--seed", "0", "--out", str(runs / "two_walls__mepoly__0"), "--no-progress-bar"])
    smoothworld.main(["--report-only", "--runs-dir", str(runs), "--out", str(out), "--name", "m", "--late", "0",
                      "--layouts", "two_walls", "--methods", "mepoly", "--seeds", "0"])
    text = (out / "m.md").read_text()
    assert (out / "m.png").exists() and (out / "m_drift.png").exists()
    assert "Trajectory fans (30 episodes per start): two_walls mepoly seed 0." in text and "![drift fields](m_drift.png)" in text
    drift = float(text.split("Panels: two_walls mepoly seed 0 (mean |drift| ")[1].split(")")[0])
    assert 0.0 <= drift <= np.sqrt(2.0)  # the clip acts per axis: full speed on a diagonal is sqrt 2

    drawn = []
    shown = smoothworld.figure(tmp_path / "f.png", runs, ["two_walls"], ["mepoly", "gmm"], [0, 1],
                               draw=lambda ax, policy, layout: drawn.append((type(policy).__name__, layout)))
    assert drawn == [("MePolyActorCriticPolicy", "two_walls")] and shown == "two_walls mepoly seed 0"


def test_policy_kwargs_and_hp_overrides_reach_every_run(tmp_path, monkeypatch):
    # the sweep's overrides are what each training job gets, and the report header says so
    captured = {}

    def fake_run_parallel(jobs, workers, report, backend, address, threads):
        captured.update(jobs)
        captured["threads"] = threads
        return {key: dict(_metrics(*key, counts=[60, 40]), torch_threads=threads) for key in jobs}

    monkeypatch.setattr(smoothworld, "run_parallel", fake_run_parallel)
    out = tmp_path / "out"
    smoothworld.main(["--runs-dir", str(tmp_path / "runs"), "--out", str(out), "--name", "o", "--late", "0",
                      "--layouts", "two_walls", "--methods", "mepoly", "--seeds", "0", "1", "--workers", "1", "--threads", "2",
                      "--policy-kwargs", "order=4", "--hp", "ent_coef=0.2"])
    assert captured.pop("threads") == 2
    assert sorted(captured) == [("two_walls", "mepoly", 0), ("two_walls", "mepoly", 1)]
    for key, (function, args) in captured.items():
        assert function is smoothworld.train_run
        _layout, _method, _seed, run_dir, _steps, hp, policy_kwargs, _algo, threads = args
        assert run_dir.endswith("__".join(map(str, key)))
        assert list(hp) == ["ent_coef=0.2"] and list(policy_kwargs) == ["order=4"] and threads == 2
    text = (out / "o.md").read_text()
    assert "policy_kwargs overrides: ['order=4']" in text and "hyperparameter overrides: ['ent_coef=0.2']" in text
    assert "torch threads per process: 2" in text and "| 1 (2 threads) |" in text  # the runs' train seconds say so
    with pytest.raises(SystemExit):
        smoothworld.main(["--runs-dir", str(tmp_path / "runs"), "--out", str(out), "--threads", "0"])


def test_train_time_names_the_thread_count_where_it_is_not_one():
    assert smoothworld.train_time(dict(train_seconds=12.4)) == "12"  # recorded before the count was kept: one thread
    assert smoothworld.train_time(dict(train_seconds=12.4, torch_threads=1)) == "12"
    assert smoothworld.train_time(dict(train_seconds=12.4, torch_threads=2)) == "12 (2 threads)"
    assert smoothworld.train_time(dict(train_seconds=12.4, torch_threads=[1, 2])) == "12 (1/2 threads)"
    assert smoothworld.train_time(dict(train_seconds=12.4, torch_threads=[None, 2])) == "12 (?/2 threads)"


def test_sweep_table_reads_settings_from_the_records_and_credits_each_method_its_best_variant(tmp_path):
    """smoothworld_sweep: variants from separate records directories side by side; the
    settings column comes from each run's config.yml (not from the label), a variant whose seeds
    differ says so, and the verdict compares each family's best variant that passes the success bar."""
    import yaml

    def config(run: Path, order=None, n_components=None, ent_coef=0.3, learning_rate=3e-4, **more):
        kwargs = {"net_arch": {"pi": [64, 64]}} | ({"order": order} if order else {}) | (
            {"n_components": n_components} if n_components else {})
        (run / "config.yml").write_text(yaml.safe_dump(dict(algo="ppo", n_timesteps=1500000, policy_kwargs=kwargs,
                                                            hyperparams=dict(ent_coef=ent_coef, learning_rate=learning_rate, **more))))

    layout = "three_goals"
    variants = {  # label -> (method, dir, {seed: goal counts}, policy settings per seed)
        "low order": ("mepoly", "order4", {0: [50, 50, 0], 1: [60, 40, 0]}, {0: dict(order=4), 1: dict(order=4)}),
        "high order": ("mepoly", "order14", {0: [34, 33, 33], 1: [30, 30, 20]},
                       {0: dict(order=14, learning_rate="lin_3.0e-4"), 1: dict(order=14, learning_rate="lin_3.0e-4")}),
        "mixture": ("gmm", "k4", {0: [70, 30, 0], 1: [100, 0, 0]}, {0: dict(n_components=4), 1: dict(n_components=8, ent_coef="auto_0.3", target_entropy=0.8)}),
    }
    args, metrics = [], {}
    for label, (method, name, counts, settings) in variants.items():
        for seed, c in counts.items():
            metrics[(label, seed)] = _write_record(tmp_path / name, layout, method, seed, c, [0.4, 0.5])
            config(tmp_path / name / f"{layout}__{method}__{seed}", **settings[seed])
        args += ["--variant", label, method, str(tmp_path / name)]
    out = tmp_path / "out"
    smoothworld_sweep.main(args + ["--layouts", layout, "--seeds", "0", "1", "2", "--late", "2", "--out", str(out), "--name", "s"])
    text = (out / "s.md").read_text()
    assert (out / "s.png").exists()
    assert "| three_goals | low order | mepoly | order=4; ent_coef=0.3; learning_rate=0.0003; ppo; 1,500,000 steps |" in text
    assert "| high order | mepoly | order=14; ent_coef=0.3; learning_rate=lin_3.0e-4; ppo; 1,500,000 steps |" in text
    assert ("n_components=4; ent_coef=0.3; learning_rate=0.0003; ppo; 1,500,000 steps / n_components=8; "
            "ent_coef=auto_0.3, target_entropy=0.8; learning_rate=0.0003;") in text and "settings differ between seeds" in text
    assert text.count("(no run for seeds [2])") == 3
    h = {key: m["goal_entropy"] for key, m in metrics.items()}
    assert f"0: {h[('low order', 0)]:.2f}, 1: {h[('low order', 1)]:.2f} (no run" in text
    mixture = [h[("mixture", 0)], h[("mixture", 1)]]  # mean ± |difference| / 2: the standard error of two seeds
    assert f"| {np.mean(mixture):.2f} ± {abs(mixture[0] - mixture[1]) / 2:.2f} | 0.45 (2) |" in text  # late: mean of [0.4, 0.5] per seed
    # 'high order' has the higher entropy but mean success (1.00 + 0.80) / 2 < 0.95: the best MePoly variant is 'low order'
    line = smoothworld_sweep.family_verdicts(smoothworld_sweep.collect(
        [(label, m, str(tmp_path / d)) for label, (m, d, _, _) in variants.items()], [layout], [0, 1], 0), [layout])[0]
    mine, rival = np.mean([h[("low order", s)] for s in (0, 1)]), np.mean([h[("mixture", s)] for s in (0, 1)])
    low = [h[("low order", s)] for s in (0, 1)]
    combined = np.sqrt((abs(low[0] - low[1]) / 2) ** 2 + (abs(mixture[0] - mixture[1]) / 2) ** 2)
    assert 0 < mine - rival < 2 * combined  # 0.62 against 0.28 ± 0.28: higher, but not by two standard errors
    assert line.startswith("three_goals: within the noise (MePoly's mean the higher): best MePoly variant 'low order'")
    assert f"{mine:.2f}" in line and f"'mixture', {rival:.2f}" in line and line in text
    assert line.endswith(f"difference {mine - rival:+.2f} ± {combined:.2f} (standard errors over seeds combined)")
    with pytest.raises(SystemExit):  # labels must be distinct
        smoothworld_sweep.main(["--variant", "a", "gmm", str(tmp_path / "k4"), "--variant", "a", "gmm", str(tmp_path / "k4")])


def test_sweep_verdict_ranks_only_outside_the_noise_and_never_against_a_single_seed(tmp_path):
    """smoothworld_sweep.family_verdicts: a best variant with one seed has no standard error, so the
    line gives no ranking (however large the gap); with seeds on both sides a gap beyond two standard
    errors of the difference (computed here with scipy) is ranked, and the matched pairs say so."""
    import yaml

    layout = "three_goals"
    runs = {"poly": ("mepoly", {0: [34, 33, 33], 1: [40, 30, 30], 2: [30, 40, 30]}),
            "mix": ("gmm", {0: [100, 0, 0], 1: [95, 5, 0], 2: [90, 5, 5]}),
            "mix, one seed": ("gmm", {0: [34, 33, 33]})}
    folder = {label: tmp_path / label.replace(", ", "_").replace(" ", "_") for label in runs}
    entropy = {}
    for label, (method, seeds) in runs.items():
        for seed, counts in seeds.items():
            root = folder[label]
            _write_record(root, layout, method, seed, counts, [])
            entropy[(label, seed)] = scipy.stats.entropy(counts) / np.log(3)
            (root / f"{layout}__{method}__{seed}" / "config.yml").write_text(yaml.safe_dump(dict(
                algo="ppo", n_timesteps=1500000, policy_kwargs={}, hyperparams=dict(ent_coef=0.3))))

    def verdict(labels):
        found = smoothworld_sweep.collect([(label, runs[label][0], str(folder[label])) for label in labels], [layout], [0, 1, 2], 0)
        return smoothworld_sweep.family_verdicts(found, [layout])[0], smoothworld_sweep.matched_comparisons(found, [layout])

    line, matched = verdict(["poly", "mix, one seed"])  # the single seed has the higher entropy: not ranked either way
    assert line.startswith("three_goals: no ranking (a variant has one seed, so no standard error): best MePoly variant 'poly'")
    assert "difference" not in line and "no ranking" in matched[0] and matched[-1].endswith("outside the noise in 0")
    poly = [entropy[("poly", s)] for s in range(3)]
    mix = [entropy[("mix", s)] for s in range(3)]
    gap, error = np.mean(poly) - np.mean(mix), np.hypot(scipy.stats.sem(poly), scipy.stats.sem(mix))
    assert gap > 2 * error
    line, matched = verdict(["poly", "mix"])
    assert line.startswith("three_goals: MePoly highest, outside the noise: best MePoly variant 'poly'")
    assert line.endswith(f"difference {gap:+.2f} ± {error:.2f} (standard errors over seeds combined)")
    assert "MePoly higher, outside the noise" in matched[0] and matched[-1].endswith("higher in 1 of 1 matched pairs, outside the noise in 1")
    line, _ = verdict(["mix"])
    assert line.startswith("three_goals: no comparison")


def test_matched_comparisons_pair_variants_trained_alike_on_their_common_seeds(tmp_path):
    """smoothworld_sweep: a MePoly variant is matched with another method's variant
    only when every run of both has the same algo, steps and hyperparams (policy kwargs may differ),
    on the seeds both have; a variant whose seeds were trained differently is matched with none."""
    import yaml

    layout = "three_goals"
    variants = {  # label -> (method, dir, {seed: (goal counts, ent_coef, policy kwargs)})
        "poly 0.3": ("mepoly", "p3", {0: ([50, 50, 0], 0.3, {"order": 8}), 1: ([100, 0, 0], 0.3, {"order": 8}),
                                      2: ([40, 60, 0], 0.3, {"order": 8})}),
        "poly 0.2": ("mepoly", "p2", {0: ([80, 20, 0], 0.2, {"order": 8})}),
        "mix 0.3": ("gmm", "g3", {0: ([90, 10, 0], 0.3, {"n_components": 8}), 1: ([30, 70, 0], 0.3, {"n_components": 8})}),
        "mix 0.2": ("gmm", "g2", {1: ([60, 40, 0], 0.2, {"n_components": 4})}),
        "mix mixed": ("gmm", "gx", {0: ([50, 50, 0], 0.3, {}), 1: ([50, 50, 0], 0.2, {})}),
    }
    entropy = {}
    for label, (method, name, runs) in variants.items():
        for seed, (counts, ent_coef, kwargs) in runs.items():
            _write_record(tmp_path / name, layout, method, seed, counts, [])
            entropy[(label, seed)] = scipy.stats.entropy(counts) / np.log(3)
            (tmp_path / name / f"{layout}__{method}__{seed}" / "config.yml").write_text(yaml.safe_dump(dict(
                algo="ppo", n_timesteps=1500000, policy_kwargs=kwargs, hyperparams=dict(ent_coef=ent_coef, n_steps=32))))
    found = smoothworld_sweep.collect([(label, m, str(tmp_path / d)) for label, (m, d, _) in variants.items()], [layout], [0, 1, 2], 0)
    lines = smoothworld_sweep.matched_comparisons(found, [layout])
    # 'poly 0.3' meets 'mix 0.3' on seeds 0, 1 (seed 2 has no GMM run); 'poly 0.2' and 'mix 0.2' share no seed
    a = [entropy[("poly 0.3", s)] for s in (0, 1)]
    b = [entropy[("mix 0.3", s)] for s in (0, 1)]
    error = np.hypot(abs(a[0] - a[1]) / 2, abs(b[0] - b[1]) / 2)  # the standard error of two seeds is |difference| / 2
    assert abs(np.mean(a) - np.mean(b)) < 2 * error  # so not ranked
    assert lines == [f"three_goals: 'poly 0.3' {np.mean(a):.2f} vs 'mix 0.3' {np.mean(b):.2f} on seeds [0, 1]: "
                     f"difference {np.mean(a) - np.mean(b):+.2f} ± {error:.2f}, within the noise (success 1.00 / 1.00)",
                     f"three_goals: MePoly's mean is the higher in {int(np.mean(a) > np.mean(b))} of 1 matched pairs, "
                     "outside the noise in 0"]
    assert np.mean(a) < np.mean(b)  # 0.32 against 0.58: the count above is 0
    out = tmp_path / "out"
    smoothworld_sweep.main([arg for label, (m, d, _) in variants.items() for arg in ("--variant", label, m, str(tmp_path / d))]
                           + ["--layouts", layout, "--seeds", "0", "1", "2", "--late", "0", "--out", str(out), "--name", "m"])
    text = (out / "m.md").read_text()
    assert "Matched comparisons" in text and all(f"* {line}\n" in text for line in lines)


REPO = Path(__file__).resolve().parents[2]


def _body(text: str) -> str:
    """A report without its header (the title, then command, date, machine, software, commit and seed lines)."""
    return text.split("\n\n", 2)[2]


def test_a_records_table_keeps_every_value_and_tabulates_like_the_run_directories(tmp_path):
    """Compaction: ``--records TABLE`` keeps the runs' metrics, CSV curves and config as one line per
    run, with every value; the report made from the table is the report made from the directories."""
    import yaml

    from mepoly_dist.zoo.benchmark import records

    runs_dir, out, table = tmp_path / "runs", tmp_path / "out", tmp_path / "sweep.jsonl"
    metrics = {}
    for seed, (counts, late) in enumerate([([40, 26, 23, 11], [0.9, 0.8, 0.7]), ([7, 92, 0, 1], [0.2, 0.3, 0.1])]):
        for method in ("mepoly", "gmm"):
            metrics[(method, seed)] = _write_record(runs_dir, "four_walls", method, seed, counts, late)
            (runs_dir / f"four_walls__{method}__{seed}" / "config.yml").write_text(
                yaml.safe_dump(dict(policy=method, hyperparams=dict(ent_coef=0.3, learning_rate="lin_3.0e-4"))))
    common = ["--report-only", "--late", "2", "--layouts", "four_walls", "--methods", "mepoly", "gmm", "--seeds", "0", "1",
              "--out", str(out)]
    smoothworld.main(common + ["--runs-dir", str(runs_dir), "--name", "dirs", "--records", str(table)])
    lines = table.read_text().splitlines()
    assert [json.loads(line)["run"] for line in lines] == sorted(f"four_walls__{m}__{s}" for m, s in metrics)
    kept = records.read_table(table)
    for (method, seed), m in metrics.items():
        record = kept[f"four_walls__{method}__{seed}"]
        assert record.metrics == m and record.config["hyperparams"] == dict(ent_coef=0.3, learning_rate="lin_3.0e-4")
        assert record.curves["eval_curve"] == {"timesteps": [512, 1024], "success_rate": [0.5, 1.0], "goal_entropy": [0.0, 0.3]}
        assert record.rows("checkpoint_goal_eval")[0] == dict(timesteps=4096, episodes=20, success_rate=1.0, goal_entropy=0.99)
    smoothworld.main(common + ["--runs-dir", str(table), "--name", "table"])
    assert _body((out / "table.md").read_text()) == _body((out / "dirs.md").read_text())
    assert "| four_walls | mepoly | 0 | (12.5, 12.5) | 1.00 | [40, 26, 23, 11] |" in (out / "table.md").read_text()
    # the compaction command makes the same table from the directories
    records.main([str(runs_dir), "--out", str(tmp_path / "compact.jsonl")])
    assert (tmp_path / "compact.jsonl").read_text() == table.read_text()
    # recording the same runs again only merges their notes; a rerun under a recorded name is refused
    records.main([str(runs_dir), "--out", str(table)])
    assert table.read_text() == (tmp_path / "compact.jsonl").read_text()
    rerun = runs_dir / "four_walls__gmm__1" / "metrics.json"
    rerun.write_text(json.dumps(_metrics("four_walls", "gmm", 1, [25, 25, 25, 25])))
    with pytest.raises(ValueError, match="different runs named four_walls__gmm__1: a rerun does not replace"):
        records.main([str(runs_dir), "--out", str(table)])
    assert table.read_text() == (tmp_path / "compact.jsonl").read_text()
    with pytest.raises(SystemExit):  # a table holds no models: nothing to train or resume
        smoothworld.main(["--runs-dir", str(table), "--layouts", "four_walls"])
    with pytest.raises(SystemExit):  # records go to a table, not to a directory of files
        smoothworld.main(common + ["--runs-dir", str(runs_dir), "--records", str(tmp_path / "records_dir")])


def test_a_rebuild_keeps_the_hand_written_notes_and_the_figures_drawn_from_the_models(tmp_path):
    """A report made again from its records keeps everything below the notes marker; figures drawn
    from the models when the runs were made stay, their panels named from the records' drift lengths."""
    from mepoly_dist.zoo.benchmark.records import compact, write_table
    from mepoly_dist.zoo.benchmark.results import NOTES_MARKER

    runs_dir, out, table = tmp_path / "runs", tmp_path / "out", tmp_path / "t.jsonl"
    for seed in (0, 1):
        for method in ("mepoly", "gmm"):
            _write_record(runs_dir, "two_walls", method, seed, [60, 40], [0.5])
    kept = {r.name: r for r in compact(sorted(runs_dir.iterdir()))}
    kept["two_walls__mepoly__1"].notes["drift_mean"] = 0.456  # seed 0's model was gone when the figures were drawn
    kept["two_walls__gmm__0"].notes["drift_mean"] = 0.7
    write_table(table, kept.values())
    args = ["--report-only", "--late", "0", "--runs-dir", str(table), "--layouts", "two_walls", "--methods", "mepoly", "gmm",
            "--seeds", "0", "1", "--out", str(out), "--name", "r"]
    smoothworld.main(args)
    text = (out / "r.md").read_text()
    assert "No figures: none of these runs has a saved model" in text and not list(out.glob("*.png"))
    (out / "r.png").write_bytes(b"fans")
    (out / "r_drift.png").write_bytes(b"drift")
    notes = NOTES_MARKER + "\n## Reading\n\nWritten by hand.\n"
    (out / "r.md").write_text(text + "\n" + notes)
    smoothworld.main(args)
    text = (out / "r.md").read_text()
    assert "![trajectory fans](r.png)" in text and "![drift fields](r_drift.png)" in text
    assert "Trajectory fans (30 episodes per start): two_walls mepoly seed 1, two_walls gmm seed 0." in text
    assert "Panels: two_walls mepoly seed 1 (mean |drift| 0.46), two_walls gmm seed 0 (mean |drift| 0.70)." in text
    assert text.endswith("\n\n" + notes) and text.count(NOTES_MARKER) == 1
    assert (out / "r.png").read_bytes() == b"fans"


def test_reports_rebuilds_the_listed_reports_and_refuses_commands_that_could_train(tmp_path):
    """``python benchmarks/reports.py``: every report of a folder's reports.yml, by its command, from the
    repository root; the report's header names that command."""
    import yaml

    from mepoly_dist.zoo.benchmark import records, reports

    root = tmp_path / "repo"
    (root / "benchmarks").mkdir(parents=True)
    (root / "benchmarks" / "smoothworld.py").write_text(
        "from mepoly_dist.zoo.benchmark.smoothworld import main\n\nif __name__ == '__main__':\n    main()\n")
    folder = root / "benchmarks" / "results" / "smoothworld"
    for seed in (0, 1):
        _write_record(tmp_path / "runs", "two_walls", "mepoly", seed, [60, 40], [0.5])
    records.main([str(tmp_path / "runs"), "--out", str(folder / "records" / "t.jsonl")])
    command = ("python benchmarks/smoothworld.py --report-only --late 0 --runs-dir benchmarks/results/smoothworld/records/t.jsonl "
               "--layouts two_walls --methods mepoly --seeds 0 1 --name r")
    (folder / "reports.yml").write_text(yaml.safe_dump([dict(report="r.md", command=command)]))
    assert reports.find_reports(root / "benchmarks" / "results") == [dict(folder=folder, report="r.md", command=command)]
    reports.main(["--results", str(root / "benchmarks" / "results")])
    text = (folder / "r.md").read_text()
    assert f"* command: `{command}`" in text and "| two_walls | mepoly | 2 | 1.00 ± 0.00 [1.00] |" in text
    for risky in ("python benchmarks/smoothworld.py --runs-dir runs/x", "python -c 'print(1)'"):
        with pytest.raises(ValueError):
            reports.run_command(risky)
    with pytest.raises(SystemExit):
        reports.main(["--results", str(root / "benchmarks" / "results"), "no_such_report.md"])


@pytest.mark.skipif(not (REPO / "benchmarks" / "results" / "smoothworld" / "reports.yml").exists(),
                    reason="needs the repository's benchmarks/ folder")
def test_the_committed_records_rebuild_the_committed_reports(tmp_path):
    """Each report of benchmarks/results/smoothworld/reports.yml, rebuilt from the committed records
    tables (in a copy of benchmarks/), is the committed report: the same command, tables, verdicts,
    figure captions and notes; only the date, machine and commit lines may differ."""
    import shutil

    from mepoly_dist.zoo.benchmark import reports

    shutil.copytree(REPO / "benchmarks", tmp_path / "benchmarks", ignore=shutil.ignore_patterns("__pycache__"))
    listed = reports.find_reports(tmp_path / "benchmarks" / "results")
    assert len(listed) >= 8
    reports.main(["--results", str(tmp_path / "benchmarks" / "results")])
    for entry in listed:
        committed = (REPO / "benchmarks" / "results" / entry["folder"].name / entry["report"]).read_text()
        rebuilt = (entry["folder"] / entry["report"]).read_text()
        assert f"* command: `{entry['command']}`" in committed.splitlines(), entry["report"]
        assert _body(rebuilt) == _body(committed), entry["report"]


class _SplitPilot:
    """A scripted SB3-like policy on three_goals: from x < 13.6 full speed to the lower-left goal's
    centre (7.5, 7.5), otherwise to the lower-right one (17.5, 7.5) (deterministic)."""

    def predict(self, obs, deterministic=False):
        position = np.asarray(obs, dtype=np.float64) * 12.5 + 12.5
        target = np.where(position[:, :1] < 13.6, [7.5, 7.5], [17.5, 7.5])
        step = target - position
        return step / np.abs(step).max(1, keepdims=True), None


def test_split_point_of_a_scripted_policy_and_the_interpolation():
    """smoothworld_split: a policy that turns left below x = 13.6 splits between the
    starts 13.5 and 14.0; the crossings interpolate linearly (checked by hand)."""
    xs = np.arange(12.0, 15.01, 0.5)
    counts = smoothworld_split.split_counts(_SplitPilot(), "three_goals", xs, 9.5, episodes=4)
    assert counts.shape == (len(xs), 4) and (counts[:, 0] == 0).all() and (counts[:, 3] == 0).all()  # no timeouts, no top goal
    assert counts[:, 1].tolist() == [4, 4, 4, 4, 0, 0, 0] and counts[:, 2].tolist() == [0, 0, 0, 0, 4, 4, 4]
    found = smoothworld_split.split_summary(xs, counts)
    assert found["split"] == pytest.approx(13.75) and found["width"] == pytest.approx(0.4)  # 0.9 at 13.55, 0.1 at 13.95
    share = [1.0, 1.0, 0.75, 0.25, 0.0]
    assert smoothworld_split.crossing([10, 11, 12, 13, 14], share, 0.5) == pytest.approx(12.5)
    assert smoothworld_split.crossing([10, 11, 12, 13, 14], share, 0.9) == pytest.approx(11.4)
    assert np.isnan(smoothworld_split.crossing([10, 11], [1.0, 0.8], 0.5))  # never crosses
