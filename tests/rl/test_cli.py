"""The ``mepoly`` command as a person meets it: its help, the one-line errors for bad input (exit
code 2, nothing left behind) and the message when the ``[rl]`` extra is missing."""

from __future__ import annotations

import argparse
import subprocess
import sys
import textwrap

import pytest

from mepoly_dist.zoo.cli import _parser, main


def _run(argv, capsys):
    """``mepoly argv`` in this process: (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


@pytest.mark.parametrize("command", [[], ["train"], ["eval"], ["fit"]])
def test_help_is_plain_text_and_describes_every_option(command, capsys):
    code, out, _ = _run([*command, "--help"], capsys)
    assert code == 0
    for markup in (":mod:", ":class:", ":func:", "``"):
        assert markup not in out
    parser = _parser()
    subparsers = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    if command:
        parser = subparsers.choices[command[0]]
        actions = parser._actions
    else:
        actions = [action for action in parser._actions if action is not subparsers] + subparsers._choices_actions
    flat = " ".join(out.split())
    for action in actions:
        assert action.help, f"{action.option_strings or action.dest} has no help"
        start = " ".join(action.help.split()[:4]) % {"default": action.default}
        assert start in flat, action.help
    if command == ["train"]:
        for flag in ("--seed SEED", "--threads N", "--verbose {0,1,2}", "--no-progress-bar", "ENV"):
            assert flag in out


def _bad_train(tmp_path, *args):
    return ["train", *args, "--out", str(tmp_path / "new" / "run"), "--no-progress-bar"]


@pytest.mark.parametrize("args, expected", [
    (["lemnscate"], ["unknown environment 'lemnscate'", "did you mean 'lemniscate'", "two_moons", "four_walls"]),
    (["lemniscate", "--policy", "beta"], ["invalid choice: 'beta'", "'mepoly'", "'gaussian'", "'gmm'", "'fpo'"]),
    (["lemniscate", "--algo", "sac"], ["invalid choice: 'sac'", "'maxent_ppo'"]),
    (["lemniscate", "--hp", "lerning_rate=1e-3"], ["unknown hyperparameter 'lerning_rate'", "did you mean 'learning_rate'", "PPO takes",
                                                   "n_epochs", "ent_coef"]),
    (["lemniscate", "--hp", "seed=3"], ["'seed' is set by the run", "--seed"]),
    (["lemniscate", "--hp", "ent_coef"], ["--hp expects key=value", "'ent_coef'"]),
    (["lemniscate", "--hp", "n_steps=0"], ["n_steps must be a positive integer"]),
    (["lemniscate", "--policy-kwargs", "ordr=5"], ["unknown policy kwarg 'ordr'", "did you mean 'order'", "net_arch"]),
    (["lemniscate", "--policy", "gaussian", "--policy-kwargs", "order=5"], ["unknown policy kwarg 'order'", "log_std_init"]),
    (["lemniscate", "--policy-kwargs", "activation_fn=Tanhh"], ["activation_fn='Tanhh' is not a torch.nn module", "'Tanh'"]),
    (["lemniscate", "--env-kwargs", "targt=two_moons"], ["unknown env kwarg 'targt'", "mepoly/Bandit-v0 takes", "target", "sigma"]),
    (["Pendulum-v1", "--env-kwargs", "gravity=3"], ["unknown env kwarg 'gravity'", "Pendulum-v1 takes", "g,", "max_episode_steps"]),
    # values that only the environment's or the model's constructor rejects
    (["lemniscate", "--env-kwargs", "target=spiral"], ["unknown target 'spiral'", "lemniscate", "two_moons"]),
    (["four_walls", "--env-kwargs", "layout=nowhere"], ["unknown Smooth World layout 'nowhere'", "three_goals"]),
    (["lemniscate", "--policy", "fpo", "--hp", "ent_coef=0.1"], ["FPO has no tractable entropy"]),
    (["lemniscate", "--steps", "-5"], ["argument --steps", "positive integer", "'-5'"]),
    (["lemniscate", "--n-envs", "0"], ["argument --n-envs", "positive integer"]),
    (["lemniscate", "--seed", "-1"], ["argument --seed"]),
])
def test_bad_train_input_is_one_line_exit_2_and_leaves_no_directory(tmp_path, capsys, args, expected):
    code, _, err = _run(_bad_train(tmp_path, *args), capsys)
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("mepoly train: error: "), err
    for text in expected:
        assert text in err, (text, err)
    assert list(tmp_path.iterdir()) == []  # neither the run directory nor its new parent


def test_a_failed_setup_leaves_an_existing_directory_alone(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    code, _, err = _run(["train", "lemniscate", "--env-kwargs", "target=spiral", "--out", str(out), "--no-progress-bar"], capsys)
    assert code == 2 and "unknown target 'spiral'" in err
    assert (out / "notes.txt").read_text() == "mine" and not (out / "config.yml").exists()


def test_bad_eval_and_fit_input(tmp_path, capsys):
    code, _, err = _run(["eval", str(tmp_path)], capsys)
    assert code == 2 and err == f"mepoly eval: error: {tmp_path} is not a run directory: it has no config.yml (made by `mepoly train`)\n"
    code, _, err = _run(["eval", str(tmp_path / "run"), "--episodes", "0"], capsys)
    assert code == 2 and len(err.splitlines()) == 1 and "--episodes" in err
    code, _, err = _run(["fit", "spiral", "--out", str(tmp_path / "fit")], capsys)
    assert code == 2 and len(err.splitlines()) == 1 and "'lemniscate'" in err and "'two_moons'" in err
    code, _, err = _run(["fit", "lemniscate", "--quadrature", "simpson:9", "--out", str(tmp_path / "fit")], capsys)
    assert code == 2 and err.startswith("mepoly fit: error: unknown quadrature rule 'simpson'") and "gauss_legendre" in err
    code, _, err = _run(["fit", "lemniscate", "--alpha", "0", "--out", str(tmp_path / "fit")], capsys)
    assert code == 2 and "--alpha" in err and "positive number" in err
    assert not (tmp_path / "fit").exists()


def _without(module: str, argv: list[str]) -> subprocess.CompletedProcess:
    """``mepoly argv`` in a fresh interpreter in which ``module`` cannot be imported (as when it is not installed)."""
    script = textwrap.dedent(f"""
        import sys
        sys.modules[{module!r}] = None  # makes `import {module}` fail, and find_spec say so
        from mepoly_dist.zoo.cli import main
        main({argv!r})
    """)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("module, argv, missing", [
    ("yaml", ["train", "lemniscate"], "pyyaml"),
    ("matplotlib", ["fit", "lemniscate"], "matplotlib"),
    ("tensorboard", ["train", "lemniscate"], "tensorboard"),
])
def test_without_the_rl_extra_the_command_says_what_to_install(tmp_path, module, argv, missing):
    result = _without(module, [*argv, "--out", str(tmp_path / "run")])
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert f"missing: {missing}" in result.stderr and 'pip install "mepoly-dist[rl]"' in result.stderr
    assert not (tmp_path / "run").exists()


def test_without_stable_baselines3_the_command_says_what_to_install(tmp_path):
    result = _without("stable_baselines3", ["train", "lemniscate", "--out", str(tmp_path / "run")])
    assert result.returncode == 2 and 'pip install "mepoly-dist[rl]"' in result.stderr and len(result.stderr.splitlines()) == 1
