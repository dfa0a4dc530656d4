r"""PPO with a MePoly policy in one file, CleanRL style: torch, gymnasium, numpy and the core ``mepoly_dist``.

The actor predicts the natural parameters :math:`\lambda(s)` of a MePoly density on the action
cube :math:`[-1, 1]^D` (paper section 4.1, eq. 7-9)

    pi(a | s) = exp(lambda(s)^T phi(a) - A(lambda(s))),   A(lambda) = log int_{[-1,1]^D} exp(lambda^T phi(a)) da,

with phi the Legendre features up to total degree ``--order`` and A computed by quadrature, so
``log_prob`` and ``entropy()`` are exact: PPO's clipped surrogate (eq. 11) and the entropy bonus
(eq. 12) need no estimator.  Structure, names and logs follow CleanRL's
``ppo_continuous_action.py``; the defaults are the paper's manifold bandit (section 5.2), which
``mepoly train lemniscate`` runs with Stable-Baselines3.

    python examples/cleanrl_ppo_mepoly.py --target lemniscate --seed 0 --metrics-json lemniscate.json
    python examples/cleanrl_ppo_mepoly.py --env-id Pendulum-v1 --num-envs 4 --num-steps 1024 \
        --total-timesteps 102400 --num-minibatches 64 --learning-rate 1e-3 --gamma 0.9 \
        --gae-lambda 0.95 --ent-coef 0 --norm-adv --order 8
"""

import argparse
import ast
import csv
import dataclasses
import importlib
import inspect
import json
import math
import os
import random
import time
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from mepoly_dist import MePoly, MePolyFamily, MePolyHead

__all__ = ["Args", "Agent", "parse_args", "make_env", "evaluate", "main"]

BANDIT_ID = "mepoly/Bandit-v0"


@dataclass
class Args:
    exp_name: str = os.path.basename(__file__)[: -len(".py")]
    """the name of this experiment (the run folder is runs/{env_id}__{exp_name}__{seed}__{time})"""
    seed: int = 0
    """seed of python, numpy, torch and the environments"""
    cuda: bool = True
    """use CUDA when it is available"""
    env_id: str = BANDIT_ID
    """a gymnasium id with a Box action space of finite bounds"""
    target: str = "lemniscate"
    """the bandit's target point cloud, lemniscate or two_moons (mepoly/Bandit-v0 only)"""
    total_timesteps: int = 102400
    """environment steps of the run"""
    learning_rate: float = 2e-3
    """Adam's learning rate (at the start, when annealed)"""
    num_envs: int = 1024
    """parallel environments (gymnasium SyncVectorEnv)"""
    num_steps: int = 1
    """steps per environment per rollout (the batch is num_envs * num_steps)"""
    anneal_lr: bool = True
    """anneal the learning rate linearly to 0 over the iterations (reached at the last update)"""
    gamma: float = 1.0
    """discount factor"""
    gae_lambda: float = 1.0
    """lambda of generalized advantage estimation"""
    num_minibatches: int = 6
    """minibatches per epoch"""
    update_epochs: int = 10
    """epochs over each batch"""
    norm_adv: bool = False
    """normalize advantages per minibatch (off: it rescales the temperature, and exp(r/ent_coef) is PPO's optimum only without it)"""
    clip_coef: float = 0.2
    """the surrogate clipping coefficient epsilon (eq. 11)"""
    clip_vloss: bool = False
    """clip the value loss around the old values (CleanRL's default; SB3's PPO does not)"""
    ent_coef: float = 0.2
    """the entropy coefficient alpha (eq. 12), the temperature of the bandit's target exp(r/alpha)"""
    vf_coef: float = 0.5
    """coefficient of the value loss"""
    max_grad_norm: float = 0.5
    """the maximum norm of the gradient"""
    order: int = 14
    """total degree of MePoly's polynomial energy: binom(order + D, D) natural parameters"""
    eval_episodes: int = 10
    """episodes of the deterministic evaluation (actions: the density's mode)"""
    metric_samples: int = 100000
    """policy samples for the bandit's coverage, TV and mean reward"""
    metrics_json: str = ""
    """write the final metrics to this JSON file (empty: don't)"""


def parse_args() -> Args:
    """The fields of :class:`Args` as command-line options, each field's docstring as its help."""
    body = ast.parse(inspect.getsource(Args)).body[0].body
    docs = {a.target.id: b.value.value for a, b in zip(body, body[1:]) if isinstance(a, ast.AnnAssign) and isinstance(b, ast.Expr)}
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    for field in dataclasses.fields(Args):
        option = "--" + field.name.replace("_", "-")
        if field.type is bool:
            parser.add_argument(option, action=argparse.BooleanOptionalAction, default=field.default, help=docs[field.name])
        else:
            parser.add_argument(option, type=field.type, default=field.default, help=docs[field.name])
    return Args(**vars(parser.parse_args()))


def make_env(env_id: str, env_kwargs: dict):
    def thunk():
        env = gym.make(env_id, **env_kwargs)
        return gym.wrappers.RecordEpisodeStatistics(env)  # no ClipAction: MePoly's actions never leave the box

    return thunk


def layer_init(layer: nn.Linear, std: float = np.sqrt(2), bias_const: float = 0.0) -> nn.Linear:
    torch.nn.init.orthogonal_(layer.weight, std)
    torch.nn.init.constant_(layer.bias, bias_const)
    return layer


class Agent(nn.Module):
    """Separate tanh MLPs [64, 64] for the critic V(s) and the actor, whose last layer is a MePolyHead."""

    def __init__(self, obs_dim: int, action_dim: int, order: int):
        super().__init__()
        self.critic = nn.Sequential(
            layer_init(nn.Linear(obs_dim, 64)), nn.Tanh(), layer_init(nn.Linear(64, 64)), nn.Tanh(), layer_init(nn.Linear(64, 1), std=1.0)
        )
        self.actor_trunk = nn.Sequential(layer_init(nn.Linear(obs_dim, 64)), nn.Tanh(), layer_init(nn.Linear(64, 64)), nn.Tanh())
        # lambda(s) = W h(s) + b: the head predicts every natural parameter but the constant one
        # (it cancels against A).  Gain 0.01 keeps lambda near 0: the policy starts almost uniform
        # on the cube, the maximum-entropy density, as CleanRL's Gaussian starts with a mean near 0.
        self.actor_head = MePolyHead(64, MePolyFamily(dim=action_dim, order=order))
        layer_init(self.actor_head.linear, std=0.01)

    def get_value(self, x: torch.Tensor) -> torch.Tensor:
        return self.critic(x)

    def policy(self, x: torch.Tensor) -> MePoly:
        """pi(. | s) for a batch of observations: a MePoly of batch shape (batch,), event shape (D,)."""
        return self.actor_head(self.actor_trunk(x))

    def get_action_and_value(self, x: torch.Tensor, action: torch.Tensor | None = None):
        dist = self.policy(x)
        if action is None:
            action = dist.sample()  # exact sampling from the quadrature CDF; no rsample needed by PPO
        # log_prob = lambda^T phi(a) - A(lambda) (eq. 8-9) and the entropy A - lambda^T E[phi]
        # are exact for the joint density: no sum over independent action dimensions.
        return action, dist.log_prob(action), dist.entropy(), self.critic(x)


class ActionToBox:
    """The affine map from MePoly's cube [-1, 1]^D to the environment's Box [low, high].

    MePoly's support *is* the box, so no action is ever clipped, and unlike a tanh-squashed
    Gaussian there is no Jacobian to correct: PPO's ratio and entropy are computed on the cube,
    where a constant Jacobian cancels (ratio) or only shifts (entropy) them."""

    def __init__(self, space: gym.spaces.Box):
        if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
            raise ValueError(f"this PPO needs a flat Box action space, got {space}")
        if not (np.isfinite(space.low).all() and np.isfinite(space.high).all()):
            raise ValueError(f"MePoly's density lives on a box: the action bounds must be finite, got {space}")
        self.low, self.high, self.dtype = space.low.astype(np.float64), space.high.astype(np.float64), space.dtype

    def __call__(self, action: torch.Tensor) -> np.ndarray:
        a = action.detach().cpu().double().numpy()
        return (self.low + (a + 1.0) * 0.5 * (self.high - self.low)).astype(self.dtype)


class CSVWriter:
    """The two calls of SummaryWriter this file makes, into scalars.csv when tensorboard is missing."""

    def __init__(self, log_dir: str):
        os.makedirs(log_dir, exist_ok=True)
        self.file = open(os.path.join(log_dir, "scalars.csv"), "w", newline="")
        self.rows = csv.writer(self.file)
        self.rows.writerow(["tag", "value", "step"])

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.rows.writerow([tag, float(value), step])

    def add_text(self, tag: str, text: str) -> None:
        with open(os.path.join(os.path.dirname(self.file.name), f"{tag}.md"), "w") as f:
            f.write(text)

    def close(self) -> None:
        self.file.close()


def make_writer(log_dir: str):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return CSVWriter(log_dir)
    return SummaryWriter(log_dir)


@torch.no_grad()
def evaluate(agent: Agent, env_id: str, env_kwargs: dict, to_box: ActionToBox, episodes: int, seed: int, device) -> list[float]:
    """Episode returns of the deterministic policy a = argmax_a pi(a | s), the density's mode."""
    env, returns = gym.make(env_id, **env_kwargs), []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        done, total = False, 0.0
        while not done:
            mode = agent.policy(torch.as_tensor(obs, dtype=torch.float32, device=device)[None]).mode
            obs, reward, terminated, truncated, _ = env.step(to_box(mode[0]))
            done, total = terminated or truncated, total + float(reward)
        returns.append(total)
    env.close()
    return returns


def main(args: Args) -> dict:
    args.batch_size = args.num_envs * args.num_steps
    args.minibatch_size = math.ceil(args.batch_size / args.num_minibatches)  # 1024 / 6 -> 171, as SB3's batch_size
    args.num_iterations = args.total_timesteps // args.batch_size
    if args.num_iterations < 1:
        raise ValueError(f"total_timesteps {args.total_timesteps} is less than one batch of num_envs * num_steps = {args.batch_size}")
    is_bandit = args.env_id == BANDIT_ID
    if is_bandit:
        importlib.import_module("mepoly_dist.zoo.envs")  # registers mepoly/Bandit-v0 (imports gymnasium, numpy, scipy)
    env_kwargs = {"target": args.target} if is_bandit else {}
    run_name = f"{args.env_id.replace('/', '-')}__{args.exp_name}__{args.seed}__{int(time.time())}"  # no '/' in a folder name
    writer = make_writer(f"runs/{run_name}")
    writer.add_text("hyperparameters", "|param|value|\n|-|-|\n" + "\n".join(f"|{k}|{v}|" for k, v in vars(args).items()))

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() and args.cuda else "cpu")

    envs = gym.vector.SyncVectorEnv(
        [make_env(args.env_id, env_kwargs) for _ in range(args.num_envs)], autoreset_mode=gym.vector.AutoresetMode.SAME_STEP
    )
    to_box = ActionToBox(envs.single_action_space)
    obs_shape, action_dim = envs.single_observation_space.shape, envs.single_action_space.shape[0]
    agent = Agent(int(np.prod(obs_shape)), action_dim, args.order).to(device)
    optimizer = torch.optim.Adam(agent.parameters(), lr=args.learning_rate, eps=1e-5)

    # rollout storage; actions are kept on the cube [-1, 1]^D, where the density lives
    obs = torch.zeros((args.num_steps, args.num_envs) + obs_shape, device=device)
    actions = torch.zeros((args.num_steps, args.num_envs, action_dim), device=device)
    logprobs, rewards, dones, values = (torch.zeros((args.num_steps, args.num_envs), device=device) for _ in range(4))

    global_step, start_time = 0, time.time()
    next_obs, _ = envs.reset(seed=args.seed)
    next_obs, next_done = torch.as_tensor(next_obs, dtype=torch.float32, device=device), torch.zeros(args.num_envs, device=device)

    for iteration in range(1, args.num_iterations + 1):
        if args.anneal_lr:
            # SB3's schedule: the fraction of the budget left after this iteration's rollout, so the
            # last update has lr 0 (CleanRL's 1 - (iteration - 1) / N ended at TV 0.093, not 0.090)
            optimizer.param_groups[0]["lr"] = (1.0 - iteration / args.num_iterations) * args.learning_rate

        episode_returns = []
        for step in range(args.num_steps):
            global_step += args.num_envs
            obs[step], dones[step] = next_obs, next_done
            with torch.no_grad():
                action, logprob, _, value = agent.get_action_and_value(next_obs)
            values[step], actions[step], logprobs[step] = value.flatten(), action, logprob

            next_obs, reward, terminations, truncations, infos = envs.step(to_box(action))
            rewards[step] = torch.as_tensor(reward, dtype=torch.float32, device=device)
            # A time limit is not a terminal state: bootstrap the value of the truncated episode's
            # last observation into its reward (as SB3 does), then treat the step as done.
            cut_short = truncations & ~terminations
            if cut_short.any():
                final_obs = torch.as_tensor(np.stack(infos["final_obs"][cut_short]), dtype=torch.float32, device=device)
                with torch.no_grad():
                    rewards[step, torch.as_tensor(cut_short, device=device)] += args.gamma * agent.get_value(final_obs).flatten()
            next_obs = torch.as_tensor(next_obs, dtype=torch.float32, device=device)
            next_done = torch.as_tensor(terminations | truncations, dtype=torch.float32, device=device)
            if "final_info" in infos:
                episode_returns.extend(infos["final_info"]["episode"]["r"][infos["final_info"]["_episode"]])

        # generalized advantage estimation: A_t = sum_l (gamma lambda)^l delta_{t+l},
        # delta_t = r_t + gamma V(s_{t+1}) (1 - done_{t+1}) - V(s_t); returns R_t = A_t + V(s_t)
        with torch.no_grad():
            next_value = agent.get_value(next_obs).flatten()
            advantages, lastgaelam = torch.zeros_like(rewards), 0.0
            for t in reversed(range(args.num_steps)):
                nextnonterminal = 1.0 - (next_done if t == args.num_steps - 1 else dones[t + 1])
                nextvalues = next_value if t == args.num_steps - 1 else values[t + 1]
                delta = rewards[t] + args.gamma * nextvalues * nextnonterminal - values[t]
                advantages[t] = lastgaelam = delta + args.gamma * args.gae_lambda * nextnonterminal * lastgaelam
            returns = advantages + values

        b_obs, b_actions = obs.reshape((-1,) + obs_shape), actions.reshape(-1, action_dim)
        b_logprobs, b_advantages, b_returns, b_values = (x.reshape(-1) for x in (logprobs, advantages, returns, values))

        b_inds, clipfracs = np.arange(args.batch_size), []
        for epoch in range(args.update_epochs):
            np.random.shuffle(b_inds)
            for start in range(0, args.batch_size, args.minibatch_size):
                mb_inds = b_inds[start : start + args.minibatch_size]
                _, newlogprob, entropy, newvalue = agent.get_action_and_value(b_obs[mb_inds], b_actions[mb_inds])
                logratio = newlogprob - b_logprobs[mb_inds]
                ratio = logratio.exp()  # r_t(theta) = pi_theta(a|s) / pi_theta_old(a|s), exact for MePoly
                with torch.no_grad():
                    old_approx_kl, approx_kl = (-logratio).mean(), ((ratio - 1) - logratio).mean()
                    clipfracs.append(((ratio - 1.0).abs() > args.clip_coef).float().mean().item())

                mb_advantages = b_advantages[mb_inds]
                if args.norm_adv:
                    mb_advantages = (mb_advantages - mb_advantages.mean()) / (mb_advantages.std() + 1e-8)

                # clipped surrogate (eq. 11): L^CLIP = E[min(r_t A_t, clip(r_t, 1 - eps, 1 + eps) A_t)]
                clipped_ratio = torch.clamp(ratio, 1 - args.clip_coef, 1 + args.clip_coef)
                pg_loss = torch.max(-mb_advantages * ratio, -mb_advantages * clipped_ratio).mean()

                newvalue = newvalue.view(-1)
                if args.clip_vloss:
                    v_clipped = b_values[mb_inds] + torch.clamp(newvalue - b_values[mb_inds], -args.clip_coef, args.clip_coef)
                    v_loss = 0.5 * torch.max((newvalue - b_returns[mb_inds]) ** 2, (v_clipped - b_returns[mb_inds]) ** 2).mean()
                else:
                    v_loss = 0.5 * ((newvalue - b_returns[mb_inds]) ** 2).mean()

                # eq. 12: maximize L^CLIP + alpha H[pi(.|s)] with MePoly's exact entropy
                # H = A(lambda) - lambda^T E[phi(a)] (quadrature, differentiable): no sample estimate.
                entropy_loss = entropy.mean()
                loss = pg_loss - args.ent_coef * entropy_loss + args.vf_coef * v_loss

                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm)
                optimizer.step()

        y_pred, y_true = b_values.cpu().numpy(), b_returns.cpu().numpy()
        explained_var = np.nan if np.var(y_true) == 0 else 1 - np.var(y_true - y_pred) / np.var(y_true)
        sps = int(global_step / (time.time() - start_time))
        scalars = {
            "charts/learning_rate": optimizer.param_groups[0]["lr"], "losses/value_loss": v_loss.item(),
            "losses/policy_loss": pg_loss.item(), "losses/entropy": entropy_loss.item(),
            "losses/old_approx_kl": old_approx_kl.item(), "losses/approx_kl": approx_kl.item(),
            "losses/clipfrac": np.mean(clipfracs), "losses/explained_variance": explained_var, "charts/SPS": sps,
        }
        if episode_returns:
            scalars["charts/episodic_return"] = float(np.mean(episode_returns))
        for tag, value in scalars.items():
            writer.add_scalar(tag, value, global_step)
        print(f"iteration={iteration} global_step={global_step} episodic_return={scalars.get('charts/episodic_return', float('nan')):.4f} "
              f"entropy={entropy_loss.item():.4f} SPS={sps}")
    train_seconds = time.time() - start_time
    envs.close()

    results = {"env_id": args.env_id, "run_name": run_name, "global_step": global_step,
               "train_seconds": round(train_seconds, 2), "sps": int(global_step / train_seconds)}
    eval_returns = evaluate(agent, args.env_id, env_kwargs, to_box, args.eval_episodes, args.seed + 10_000, device)
    results["eval_return"] = float(np.mean(eval_returns))
    if is_bandit:
        # the application's metrics (section 5.2), against the Boltzmann target exp(r(a) / alpha)
        from mepoly_dist.zoo.metrics import bandit_metrics
        from mepoly_dist.zoo.targets import target_points

        with torch.no_grad():
            samples = to_box(agent.policy(next_obs[:1]).sample((args.metric_samples,))[:, 0])
        results.update(bandit_metrics(samples, target_points(args.target), alpha=args.ent_coef))
    for tag in ("eval_return", "coverage", "tv_to_target", "mean_reward"):
        if tag in results:
            writer.add_scalar(f"eval/{tag}", results[tag], global_step)
    writer.close()

    print(f"\n{'metric':<14}{'value':>14}")
    for key, value in results.items():
        print(f"{key:<14}{value:>14.4f}" if isinstance(value, float) else f"{key:<14}{value!s:>14}")
    if args.metrics_json:
        with open(args.metrics_json, "w") as f:
            json.dump(results, f, indent=2)
    return results


if __name__ == "__main__":
    main(parse_args())
