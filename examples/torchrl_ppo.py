"""PPO with a MePoly policy in TorchRL: ``ProbabilisticActor`` + ``ClipPPOLoss`` on a gymnasium environment.

The pieces are TorchRL's own, in the layout of its ``sota-implementations/ppo`` scripts: a
gymnasium environment wrapped for TorchRL with transforms, a ``Collector``, GAE, ``ClipPPOLoss``,
a replay buffer that deals out minibatches, Adam with a linearly annealed learning rate, and a
deterministic evaluation under ``set_exploration_type(ExplorationType.DETERMINISTIC)``.  The policy
is a MePoly density on ``[-1, 1]^D`` (:func:`mepoly_dist.torchrl.mepoly_actor`); ``--policy gaussian``
trains TorchRL's usual ``TanhNormal`` actor with the same budget, for comparison.

    python examples/torchrl_ppo.py                                    # Pendulum-v1, 200k frames
    python examples/torchrl_ppo.py --policy gaussian                  # TanhNormal, same settings
    python examples/torchrl_ppo.py --env-id mepoly/Bandit-v0 --target lemniscate   # the paper's bandit

Settings follow the environment (``PRESETS``): for ``mepoly/Bandit-v0`` the paper's configuration,
as in ``mepoly train lemniscate`` (1024 one-step episodes per iteration, 100 iterations, 10 epochs
of 6 minibatches, lr 2e-3 annealed to 0, entropy coefficient 0.2, no advantage normalization,
gamma = lambda = 1, order 14); for other environments settings after rl-zoo3's PPO for Pendulum-v1.

Bounded actions follow TorchRL's ``ActionScaling`` transform: the policy acts on ``[-1, 1]^D`` and
the transform maps its actions to the environment's box.
"""

from __future__ import annotations

import argparse
import json
import time

import gymnasium as gym
import numpy as np
import torch
from tensordict import TensorDict
from tensordict.nn import AddStateIndependentNormalScale, TensorDictModule
from torch import nn
from torchrl.collectors import Collector
from torchrl.data import LazyTensorStorage, ReplayBuffer, SamplerWithoutReplacement
from torchrl.envs import ActionScaling, Compose, ExplorationType, GymWrapper, RewardSum, TransformedEnv, set_exploration_type
from torchrl.modules import MLP, ProbabilisticActor, TanhNormal, ValueOperator
from torchrl.objectives import ClipPPOLoss
from torchrl.objectives.value import GAE

from mepoly_dist import MePolyFamily, MePolyHead
from mepoly_dist.torchrl import mepoly_actor

BANDIT_ID = "mepoly/Bandit-v0"

# a PPO iteration collects `steps` steps of `envs` parallel environments and makes `epochs` passes
# over them in `minibatches` minibatches
PRESETS = {
    # the paper's bandit (section 5.2) as in src/mepoly_dist/zoo/presets/ppo.yml
    BANDIT_ID: dict(envs=1024, steps=1, total_frames=102_400, epochs=10, minibatches=6, lr=2e-3,
                    gamma=1.0, gae_lambda=1.0, clip=0.2, ent_coef=0.2, normalize_advantage=False, order=14),
    # after rl-zoo3's PPO for Pendulum-v1 (gamma 0.9, lambda 0.95, lr 1e-3, 10 epochs of minibatches of 64),
    # without its gSDE, with 2048 frames per iteration (rl-zoo3: 4096) and the learning rate annealed
    "default": dict(envs=8, steps=256, total_frames=200_000, epochs=10, minibatches=32, lr=1e-3,
                    gamma=0.9, gae_lambda=0.95, clip=0.2, ent_coef=0.0, normalize_advantage=True, order=8),
}
HIDDEN = [64, 64]
MAX_GRAD_NORM = 0.5
EVAL_EPISODES = 10
BANDIT_SAMPLES = 100_000


def make_env(env_id: str, num_envs: int, seed: int, env_kwargs: dict) -> TransformedEnv:
    """``num_envs`` copies of a gymnasium environment as one batched TorchRL environment.

    A synchronous gymnasium vector env wrapped by ``GymWrapper`` (``GymEnv(env_id, num_envs=n)``
    would start n subprocesses); ``autoreset_mode=DISABLED`` lets TorchRL reset finished episodes.
    """
    vector_env = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="sync",
                              vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.DISABLED}, **env_kwargs)
    env = TransformedEnv(GymWrapper(vector_env), Compose(ActionScaling(), RewardSum()))
    env.set_seed(seed)
    return env


def orthogonal_init(module: nn.Module, gain: float) -> None:
    """SB3's initialisation: orthogonal weights with ``gain``, zero biases."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            nn.init.orthogonal_(layer.weight, gain)
            nn.init.zeros_(layer.bias)


def make_actor(policy: str, env: TransformedEnv, order: int) -> ProbabilisticActor:
    obs_dim, action_dim = env.observation_spec["observation"].shape[-1], env.action_spec.shape[-1]
    trunk = MLP(in_features=obs_dim, num_cells=HIDDEN[:-1], out_features=HIDDEN[-1], activation_class=nn.Tanh,
                activate_last_layer=True)
    orthogonal_init(trunk, np.sqrt(2))
    if policy == "mepoly":
        head = MePolyHead(HIDDEN[-1], MePolyFamily(action_dim, order))
        orthogonal_init(head, 0.01)  # nearly uniform on [-1, 1]^D at the start
        return mepoly_actor(trunk, head, spec=env.action_spec_unbatched)
    # TorchRL's continuous-control PPO actor: tanh-squashed Gaussian with a state-independent scale
    loc = nn.Linear(HIDDEN[-1], action_dim)
    orthogonal_init(loc, 0.01)
    module = nn.Sequential(trunk, loc, AddStateIndependentNormalScale(action_dim, scale_lb=1e-8))
    return ProbabilisticActor(
        TensorDictModule(module, in_keys=["observation"], out_keys=["loc", "scale"]),
        in_keys=["loc", "scale"], spec=env.action_spec_unbatched, distribution_class=TanhNormal,
        distribution_kwargs={"low": -1.0, "high": 1.0, "tanh_loc": False}, return_log_prob=True)


def make_critic(env: TransformedEnv) -> ValueOperator:
    net = MLP(in_features=env.observation_spec["observation"].shape[-1], num_cells=HIDDEN, out_features=1,
              activation_class=nn.Tanh)
    orthogonal_init(net, np.sqrt(2))
    orthogonal_init(net[-1], 1.0)
    return ValueOperator(net, in_keys=["observation"])


def evaluate(actor, env_id: str, seed: int, env_kwargs: dict) -> float:
    """Mean return of ``EVAL_EPISODES`` deterministic episodes (the policy's mode)."""
    env = make_env(env_id, EVAL_EPISODES, seed, env_kwargs)
    max_steps = gym.spec(env_id).max_episode_steps or 1000
    with torch.no_grad(), set_exploration_type(ExplorationType.DETERMINISTIC):
        rollout = env.rollout(max_steps, actor, break_when_any_done=False)
    env.close()
    done = rollout["next", "done"].squeeze(-1)
    # the first episode of each environment (or its first max_steps steps)
    last = torch.where(done.any(-1), done.float().argmax(-1), done.shape[-1] - 1)
    returns = rollout["next", "episode_reward"].squeeze(-1).gather(-1, last[:, None])
    return float(returns.mean())


def bandit_results(actor, target: str, alpha: float) -> dict:
    """Coverage, TV to exp(r / alpha) and mean reward of ``BANDIT_SAMPLES`` draws of the policy."""
    from mepoly_dist.zoo.metrics import bandit_metrics
    from mepoly_dist.zoo.targets import target_points

    with torch.no_grad():
        dist = actor.get_dist(TensorDict(observation=torch.zeros(1)))  # the bandit's constant observation
        samples = dist.sample((BANDIT_SAMPLES,)).reshape(-1, 2).numpy()
    return bandit_metrics(samples, target_points(target), alpha=alpha)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env-id", default="Pendulum-v1")
    parser.add_argument("--target", choices=["lemniscate", "two_moons"], default="lemniscate",
                        help=f"the target of {BANDIT_ID}")
    parser.add_argument("--policy", choices=["mepoly", "gaussian"], default="mepoly")
    parser.add_argument("--total-frames", type=int, help="default: the environment's preset")
    parser.add_argument("--num-envs", type=int, help="parallel environments (default: the preset's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--order", type=int, help="MePoly's polynomial order (default: the preset's)")
    parser.add_argument("--ent-coef", type=float, help="entropy coefficient (default: the preset's)")
    parser.add_argument("--metrics-json", help="write the final results to this JSON file")
    args = parser.parse_args(argv)

    bandit = args.env_id == BANDIT_ID
    if bandit:
        from mepoly_dist.zoo.envs import register_envs

        register_envs()  # mepoly/Bandit-v0 with gymnasium
    env_kwargs = {"target": args.target} if bandit else {}
    cfg = dict(PRESETS[args.env_id if bandit else "default"])
    for key, value in dict(total_frames=args.total_frames, envs=args.num_envs, order=args.order, ent_coef=args.ent_coef).items():
        if value is not None:
            cfg[key] = value
    frames_per_batch = cfg["envs"] * cfg["steps"]
    if cfg["total_frames"] < frames_per_batch:
        parser.error(f"--total-frames {cfg['total_frames']} is less than one PPO iteration ({frames_per_batch} frames)")
    torch.manual_seed(args.seed)

    env = make_env(args.env_id, cfg["envs"], args.seed, env_kwargs)
    actor, critic = make_actor(args.policy, env, cfg["order"]), make_critic(env)
    collector = Collector(env, actor, frames_per_batch=frames_per_batch, total_frames=cfg["total_frames"],
                          auto_register_policy_transforms=False)
    minibatch = -(-frames_per_batch // cfg["minibatches"])  # 1024 / 6 -> 171, as SB3's batch_size
    buffer = ReplayBuffer(storage=LazyTensorStorage(frames_per_batch), sampler=SamplerWithoutReplacement(),
                          batch_size=minibatch)
    advantage = GAE(gamma=cfg["gamma"], lmbda=cfg["gae_lambda"], value_network=critic, average_gae=False)
    loss_module = ClipPPOLoss(actor, critic, clip_epsilon=cfg["clip"], entropy_coeff=cfg["ent_coef"],
                              critic_coeff=0.5, loss_critic_type="l2",  # SB3's vf_coef 0.5 * MSE
                              normalize_advantage=cfg["normalize_advantage"])
    optimizer = torch.optim.Adam(loss_module.parameters(), lr=cfg["lr"], eps=1e-5)
    iterations = -(-cfg["total_frames"] // frames_per_batch)

    start, frames = time.perf_counter(), 0
    for iteration, data in enumerate(collector):
        frames += data.numel()
        for group in optimizer.param_groups:  # linear annealing to 0, once per iteration as SB3
            group["lr"] = cfg["lr"] * (1 - iteration / iterations)
        for _ in range(cfg["epochs"]):
            with torch.no_grad():
                advantage(data)
            buffer.extend(data.reshape(-1))
            for batch in buffer:
                losses = loss_module(batch)
                loss = losses["loss_objective"] + losses["loss_critic"] + losses["loss_entropy"]
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(loss_module.parameters(), MAX_GRAD_NORM)
                optimizer.step()
        collector.update_policy_weights_()
        if iteration % 10 == 0 or iteration == iterations - 1:
            episode_returns = data["next", "episode_reward"][data["next", "done"]]
            print(f"iteration {iteration:4d}  frames {frames:7d}  train return {episode_returns.mean():9.3f}  "
                  f"entropy {losses['entropy']:7.3f}  {time.perf_counter() - start:6.1f} s", flush=True)
    train_seconds = time.perf_counter() - start
    collector.shutdown()

    results = {"env_id": args.env_id, "policy": args.policy, "seed": args.seed, "frames": frames,
               "train_seconds": round(train_seconds, 1), **{key: cfg[key] for key in ("order", "ent_coef")}}
    if bandit:
        results.update(target=args.target, **bandit_results(actor, args.target, cfg["ent_coef"]))
        shown = ["coverage", "tv_to_target", "mean_reward"]
    else:
        results["eval_return"] = evaluate(actor, args.env_id, args.seed + 1000, env_kwargs)
        shown = ["eval_return"]
    print("\n| " + " | ".join(["env", "policy", "frames", "train s", *shown]) + " |")
    print("|" + "---|" * (4 + len(shown)))
    print(f"| {args.env_id} | {args.policy} | {frames} | {train_seconds:.0f} | "
          + " | ".join(f"{results[key]:.3f}" for key in shown) + " |")
    if args.metrics_json:
        with open(args.metrics_json, "w") as f:
            json.dump(results, f, indent=2)
    return results


if __name__ == "__main__":
    main()
