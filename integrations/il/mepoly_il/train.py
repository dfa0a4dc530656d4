"""Training runs: presets, the two-stage MePoly loop, the Diffusion Policy loop, checkpoints.

A run directory holds

* ``config.yml`` -- the resolved preset (``presets/{cpu,gpu}.yml``, task section over ``default``)
  with the command's overrides, task, demos, method and seed;
* ``tb/`` -- TensorBoard scalars (``stage1/*``, ``stage2/*``, ``dp/*``, latent diagnostics);
* ``checkpoints/latest.pt`` -- models, optimizers, LR schedules, step, RNG states: rerunning the
  same command on the same directory resumes from it;
* ``model.pt`` -- the trained model with its config and the training set's normalization
  (:func:`load_policy` rebuilds the policy from it alone);
* ``summary.json`` -- parameter count, training time, stage metrics, latent mass statistics and the
  inference latency per action chunk.

MePoly: stage 1 trains the VAE on eq. 16, stage 2 the prior on eq. 19 (see :mod:`.vae`,
:mod:`.prior`), both with AdamW and a cosine schedule with warmup (diffusers').  DP: the
noise-prediction loss with an EMA of the weights (decay 0.999, as the Diffusion Policy
baselines), its U-Net widths chosen so that its parameter count matches the MePoly model of the
same preset (``down_dims: match``).
"""

from __future__ import annotations

import copy
import json
import time
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import yaml

from .data import Normalization, load_pairs
from .diffusion_policy import DiffusionPolicy, unet_dims_matching
from .policy import DiffusionChunkPolicy, MePolyChunkPolicy, measure_latency
from .prior import LatentPrior, decoder_parameters, stage2_loss, stage2_optimizer
from .vae import TrajectoryVAE

__all__ = ["METHODS", "PRESETS", "load_preset", "preset_config", "execution_horizon", "train", "load_policy", "build_models", "count_parameters",
           "resolve_device", "ema_warmup_multi_avg_fn"]

METHODS = ("mepoly", "dp")
PRESETS = ("cpu", "gpu", "reference")


def _merge(base: dict, override: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in (override or {}).items():
        merged[key] = _merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else copy.deepcopy(value)
    return merged


def load_preset(preset: str, task: str) -> dict:
    """The preset's ``default`` section with the task's section merged over it."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; expected one of {PRESETS}")
    sections = yaml.safe_load(resources.files("mepoly_il").joinpath(f"presets/{preset}.yml").read_text())
    return _merge(sections["default"], sections.get(task, {}))


def preset_config(preset: str, task: str, overrides: list[str] | None = None) -> dict:
    """The task's preset (:func:`load_preset`) with ``overrides`` (``KEY.PATH=VALUE``, :func:`parse_override`)
    merged over it in order: the configuration ``mepoly-il train --preset PRESET --set ...`` trains."""
    config = load_preset(preset, task)
    for text in overrides or []:
        config = _merge(config, parse_override(text))
    return config


def execution_horizon(config: dict) -> int:
    """Actions executed from each predicted chunk before replanning: the method section's ``act_horizon``
    where the preset sets one, else ``data.act_horizon`` (ManiSkill's baselines: 8 of a 16-action chunk).

    A method-specific value exists because replanning costs one chunk prediction: a few milliseconds for
    MePoly's single prior sample, hundreds for the diffusion policy's denoising loop on this CPU.
    """
    method_value = config.get(config["method"], {}).get("act_horizon")
    return int(method_value if method_value is not None else config["data"]["act_horizon"])


def parse_override(text: str) -> dict:
    """``"mepoly.stage1.steps=100"`` -> ``{"mepoly": {"stage1": {"steps": 100}}}`` (value parsed as YAML)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ValueError(f"an override is KEY.PATH=VALUE, got {text!r}")
    result: dict = yaml.safe_load(value) if value else None
    for part in reversed(key.split(".")):
        result = {part: result}
    return result


def count_parameters(*modules) -> int:
    return sum(p.numel() for module in modules for p in module.parameters())


def build_models(config: dict, obs_dim: int, action_dim: int):
    """``(vae, prior)`` for ``method: mepoly``, ``(dp,)`` for ``method: dp`` (``down_dims: match`` resolved)."""
    data = config["data"]
    horizons = dict(obs_horizon=data["obs_horizon"], action_horizon=data["action_horizon"])
    vae = TrajectoryVAE(obs_dim, action_dim, **horizons, **config["mepoly"]["vae"])
    prior = LatentPrior(obs_dim, data["obs_horizon"], vae.latent_dim, **config["mepoly"]["prior"])
    if config["method"] == "mepoly":
        return vae, prior
    model_config = dict(config["dp"]["model"])
    if model_config.get("down_dims") == "match":
        model_config["down_dims"] = unet_dims_matching(count_parameters(vae, prior), obs_dim, action_dim, **horizons)
    return (DiffusionPolicy(obs_dim, action_dim, **horizons, **model_config),)


def _cosine(optimizer, warmup: int, steps: int):
    from diffusers.optimization import get_cosine_schedule_with_warmup

    return get_cosine_schedule_with_warmup(optimizer, warmup, steps)


def _rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state()}


def _set_rng_state(state: dict):
    torch.set_rng_state(state["torch"].cpu())
    np.random.set_state(state["numpy"])


class _Checkpointer:
    def __init__(self, out: Path, every: int):
        self.path, self.every = out / "checkpoints" / "latest.pt", every
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def load(self, device):
        return torch.load(self.path, map_location=device, weights_only=False) if self.path.exists() else None

    def maybe_save(self, step: int, total: int, state_fn):
        if step % self.every == 0 or step == total:
            tmp = self.path.with_suffix(".tmp")
            torch.save(state_fn(), tmp)
            tmp.replace(self.path)


def _loop(name, steps, start, batches, step_fn, writer, checkpointer, state_fn, progress, seconds: dict, log_every=50):
    """Runs ``step_fn(obs, actions) -> parts`` from ``start`` to ``steps``; returns the last logged parts.

    ``seconds[name]`` holds the stage's training seconds, those of earlier (resumed) sessions plus
    this one's, kept current at every step so that each checkpoint carries the time its steps took.
    """
    from tqdm.auto import tqdm

    t0, before, last = time.perf_counter(), seconds.get(name, 0.0), {}
    bar = tqdm(range(start, steps), desc=name, disable=not progress, initial=start, total=steps)
    for step in bar:
        obs, actions = next(batches)
        parts = step_fn(obs, actions)
        if (step + 1) % log_every == 0 or step + 1 == steps:
            last = {key: float(value) for key, value in parts.items()}
            for key, value in last.items():
                writer.add_scalar(f"{name}/{key}", value, step + 1)
            bar.set_postfix({key: f"{value:.4g}" for key, value in last.items()})
        seconds[name] = before + time.perf_counter() - t0
        checkpointer.maybe_save(step + 1, steps, lambda: state_fn(step + 1))
    return last


def resolve_device(device: str | None = None) -> torch.device:
    """``None`` / ``"auto"``: CUDA where available, else the CPU."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device} requested, but torch.cuda.is_available() is False here")
    return device


def train(task: str, demos: str | Path, method: str, out: str | Path, preset: str = "cpu", seed: int = 0,
          overrides: list[str] | None = None, progress: bool = True, device: str | None = None) -> dict:
    """Trains ``method`` on ``task``'s demonstrations into ``out``; returns the summary (also ``summary.json``).

    ``device``: where the models and the training pairs live (``None``: CUDA where available);
    not part of the run's configuration, so a run may resume on another device.
    """
    from torch.utils.tensorboard import SummaryWriter

    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
    out = Path(out)
    config = preset_config(preset, task, overrides)
    config.update(task=task, demos=str(demos), method=method, preset=preset, seed=seed, overrides=list(overrides or []))
    config_path = out / "config.yml"
    if config_path.exists():
        previous = yaml.safe_load(config_path.read_text())
        if previous != config:
            raise ValueError(f"{out} holds a run with a different configuration ({config_path}); use another --out or the same command")
    out.mkdir(parents=True, exist_ok=True)
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    torch.manual_seed(seed)
    np.random.seed(seed)
    data_config = config["data"]
    device = resolve_device(device)
    checkpointer = _Checkpointer(out, config["checkpoint_every"])
    checkpoint = checkpointer.load(device)
    normalization = Normalization.from_state_dict(checkpoint["normalization"]) if checkpoint else None
    pairs = load_pairs(demos, data_config["obs_horizon"], data_config["action_horizon"], data_config.get("num_demos"), normalization)
    normalization = pairs.normalization
    history = pairs.obs[0].numpy() * normalization.obs_std.numpy() + normalization.obs_mean.numpy()  # a raw history, for the latency
    pairs.obs, pairs.actions = pairs.obs.to(device), pairs.actions.to(device)
    models = [model.to(device) for model in build_models(config, normalization.obs_dim, normalization.action_dim)]
    generator = torch.Generator().manual_seed(seed)
    writer = SummaryWriter(str(out / "tb"))
    summary = {"task": task, "method": method, "preset": preset, "seed": seed, "num_demos": pairs.num_demos,
               "num_pairs": len(pairs), "train_seconds": {}}
    if checkpoint:
        summary["train_seconds"] = checkpoint["train_seconds"]
        _set_rng_state(checkpoint["rng"])  # CPU RNGs (CUDA streams are not restored: a resumed GPU run is not bit-identical)
        generator.set_state(checkpoint["generator"].cpu())
    if method == "mepoly":
        policy = _train_mepoly(config, models, pairs, generator, writer, checkpointer, checkpoint, summary, progress)
        state = {"vae": models[0].state_dict(), "prior": models[1].state_dict()}
        model_config = {"vae": models[0].config, "prior": models[1].config}
    else:
        policy = _train_dp(config, models[0], pairs, generator, writer, checkpointer, checkpoint, summary, progress)
        state = {"dp": policy.model.state_dict()}
        model_config = {"dp": policy.model.config}
    summary["parameters"] = count_parameters(*models)
    summary["train_seconds"]["total"] = sum(v for k, v in summary["train_seconds"].items() if k != "total")
    torch.save({"method": method, "config": config, "model_config": model_config, "state_dict": state,
                "normalization": normalization.state_dict(), "parameters": summary["parameters"]}, out / "model.pt")
    policy.eval()
    summary["latency_per_chunk"] = {**measure_latency(policy, history), "device": str(device)}
    writer.close()
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def _train_mepoly(config, models, pairs, generator, writer, checkpointer, checkpoint, summary, progress):
    vae, prior = models
    s1, s2 = config["mepoly"]["stage1"], config["mepoly"]["stage2"]
    optimizer1 = torch.optim.AdamW(vae.parameters(), lr=s1["lr"], weight_decay=s1["weight_decay"])
    schedule1 = _cosine(optimizer1, s1.get("warmup", 100), s1["steps"])
    stage, start = "stage1", 0
    if checkpoint:
        vae.load_state_dict(checkpoint["vae"])
        prior.load_state_dict(checkpoint["prior"])
        stage, start = checkpoint["stage"], checkpoint["step"]
        if stage == "stage1":
            optimizer1.load_state_dict(checkpoint["optimizer"])
            schedule1.load_state_dict(checkpoint["schedule"])

    def state_fn(stage_name, optimizer, schedule):
        return lambda step: {"stage": stage_name, "step": step, "vae": vae.state_dict(), "prior": prior.state_dict(),
                             "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(), "rng": _rng_state(),
                             "generator": generator.get_state(), "normalization": pairs.normalization.state_dict(),
                             "train_seconds": summary["train_seconds"]}

    if stage == "stage1":
        step1 = _gradient_step(lambda obs, actions: vae.loss(obs, actions, s1["beta"], s1["stress_weight"]),
                               optimizer1, schedule1, list(vae.parameters()), s1.get("grad_clip", 1.0))
        vae.train()
        summary["stage1"] = _loop("stage1", s1["steps"], start, pairs.batches(s1["batch_size"], generator), step1, writer,
                                  checkpointer, state_fn("stage1", optimizer1, schedule1), progress, summary["train_seconds"])
        stage, start = "stage2", 0
    vae.eval()  # no dropout in the frozen encoder's targets
    summary["latent"] = vae.latent_statistics(pairs.actions[torch.randperm(len(pairs), generator=generator)[:2048]])
    for key, value in summary["latent"].items():
        writer.add_scalar(f"latent/{key}", value, 0)

    optimizer2 = stage2_optimizer(vae, prior, s2["lr"], s2["decoder_lr"], s2["weight_decay"])
    schedule2 = _cosine(optimizer2, s2.get("warmup", 100), s2["steps"])
    if checkpoint and checkpoint["stage"] == "stage2":
        optimizer2.load_state_dict(checkpoint["optimizer"])
        schedule2.load_state_dict(checkpoint["schedule"])
    clipped = decoder_parameters(vae)

    step2 = _gradient_step(lambda obs, actions: stage2_loss(vae, prior, obs, actions, s2["entropy_coef"], s2["reconstruction_weight"]),
                           optimizer2, schedule2, clipped, s2["grad_clip"])
    prior.train()
    summary["stage2"] = _loop("stage2", s2["steps"], start, pairs.batches(s2["batch_size"], generator), step2, writer,
                              checkpointer, state_fn("stage2", optimizer2, schedule2), progress, summary["train_seconds"])
    prior.eval()
    return MePolyChunkPolicy(vae, prior, pairs.normalization, **_sampling(config))


def _gradient_step(loss_fn, optimizer, schedule, clipped=None, max_norm=None):
    """One optimizer step per call: ``loss, parts = loss_fn(obs, actions)``, backward, gradient-norm
    clipping of ``clipped`` to ``max_norm`` (when given), optimizer and schedule step; returns the
    logged parts with the loss."""

    def step(obs, actions):
        loss, parts = loss_fn(obs, actions)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clipped is not None:
            torch.nn.utils.clip_grad_norm_(clipped, max_norm)
        optimizer.step()
        schedule.step()
        return {"loss": loss.detach(), **parts}

    return step


def _sampling(config: dict, deterministic: bool | None = None) -> dict:
    settings = config["mepoly"]
    return {"deterministic": settings.get("deterministic", False) if deterministic is None else deterministic,
            "sampler": settings.get("sampler", "grid"), "grid_points": settings.get("grid_points", 32)}


def ema_warmup_multi_avg_fn(max_decay: float):
    r"""The exponential moving average of diffusers' ``EMAModel`` (without ``use_ema_warmup``), which ManiSkill's
    Diffusion Policy baseline keeps: at the :math:`t`-th update the average moves by
    :math:`1 - \beta_t` towards the weights, :math:`\beta_t = \min(\beta_{\max}, t / (t + 9))`, so early weights
    fade fast and the average settles at ``max_decay`` (0.9999 there) after about ``9 / (1 - max_decay)`` updates.

    A ``multi_avg_fn`` for :class:`torch.optim.swa_utils.AveragedModel`, which copies the weights at the first
    update and calls this with ``num_averaged = t - 1`` at the :math:`t`-th.
    """

    @torch.no_grad()
    def update(averaged: list, current: list, num_averaged) -> None:
        t = int(num_averaged) + 1
        weight = 1.0 - min(max_decay, t / (t + 9))
        for mean, value in zip(averaged, current):
            mean.lerp_(value, weight)

    return update


def _train_dp(config, model, pairs, generator, writer, checkpointer, checkpoint, summary, progress):
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    t = config["dp"]["train"]
    optimizer = torch.optim.AdamW(model.parameters(), lr=t["lr"], betas=tuple(t.get("betas", (0.9, 0.999))), weight_decay=t["weight_decay"])
    schedule = _cosine(optimizer, t.get("warmup", 500), t["steps"])
    decay = t.get("ema_decay", 0.999)
    ema = AveragedModel(model, multi_avg_fn=ema_warmup_multi_avg_fn(decay) if t.get("ema_warmup", False) else get_ema_multi_avg_fn(decay))
    start = 0
    if checkpoint:
        model.load_state_dict(checkpoint["dp"])
        ema.load_state_dict(checkpoint["ema"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        schedule.load_state_dict(checkpoint["schedule"])
        start = checkpoint["step"]

    gradient_step = _gradient_step(model.loss, optimizer, schedule)

    def step_fn(obs, actions):
        parts = gradient_step(obs, actions)
        ema.update_parameters(model)
        return parts

    def state_fn(step):
        return {"stage": "dp", "step": step, "dp": model.state_dict(), "ema": ema.state_dict(), "optimizer": optimizer.state_dict(),
                "schedule": schedule.state_dict(), "rng": _rng_state(), "generator": generator.get_state(),
                "normalization": pairs.normalization.state_dict(), "train_seconds": summary["train_seconds"]}

    model.train()
    summary["dp"] = _loop("dp", t["steps"], start, pairs.batches(t["batch_size"], generator), step_fn, writer, checkpointer, state_fn,
                          progress, summary["train_seconds"])
    ema.module.eval()
    return DiffusionChunkPolicy(ema.module, pairs.normalization)


def load_policy(run_dir: str | Path, deterministic: bool | None = None, device: str | None = "cpu"):
    """The policy of a finished run (``model.pt``) on ``device`` (the CPU by default), and the run's config."""
    path = Path(run_dir) / "model.pt"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no trained model (run `mepoly-il train ... --out {run_dir}` first)")
    device = resolve_device(device)
    saved = torch.load(path, map_location=device, weights_only=False)
    normalization = Normalization.from_state_dict(saved["normalization"])
    if saved["method"] == "mepoly":
        vae, prior = TrajectoryVAE(**saved["model_config"]["vae"]), LatentPrior(**saved["model_config"]["prior"])
        vae.load_state_dict(saved["state_dict"]["vae"])
        prior.load_state_dict(saved["state_dict"]["prior"])
        policy = MePolyChunkPolicy(vae, prior, normalization, **_sampling(saved["config"], deterministic))
    else:
        policy = DiffusionChunkPolicy(DiffusionPolicy(**saved["model_config"]["dp"]), normalization)
        policy.model.load_state_dict(saved["state_dict"]["dp"])
    return policy.to(device).eval(), saved["config"]
