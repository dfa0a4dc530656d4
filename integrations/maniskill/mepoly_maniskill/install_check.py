"""Checks that ManiSkill 3 runs here: creates PushCube-v1 on the CPU simulator and steps it.

``python -m mepoly_maniskill.install_check`` prints the measured steps/s, or the cause of the
failure and its fix, and exits non-zero on failure. ManiSkill 3.0.1 / SAPIEN 3.0.3 open a
Vulkan device even for state observations: without a Vulkan driver (ICD), or with Debian 12's
Mesa 22 lavapipe, creating any environment fails with ``vk::createInstanceUnique:
ErrorIncompatibleDriver`` (or "failed to find a rendering device"); Mesa 25's lavapipe from
``bookworm-backports`` works (see ``integrations/maniskill/install.sh``). ManiSkill's motion
planner (mplib 0.1.1) segfaults under numpy 2, so numpy >= 2 is reported as a failure too.

:func:`find_installation_problem` is the same check as a one-line reason (or ``None``), which
the integration's tests use to skip when ManiSkill cannot run.
"""

from __future__ import annotations

import argparse
import functools
import glob
import os
import subprocess
import sys
import time
from dataclasses import dataclass

__all__ = [
    "BACKPORTS_INSTALL_COMMAND",
    "InstallCheckResult",
    "ManiSkillInstallError",
    "check_installation",
    "find_installation_problem",
    "installed_vulkan_icds",
    "main",
]

BACKPORTS_INSTALL_COMMAND = (
    "echo 'deb http://deb.debian.org/debian bookworm-backports main' "
    "| sudo tee /etc/apt/sources.list.d/bookworm-backports.list && sudo apt-get update && "
    "sudo apt-get install -y -t bookworm-backports mesa-vulkan-drivers libvulkan1"
    "   (or run integrations/maniskill/install.sh)"
)
PIP_INSTALL_COMMAND = 'pip install torch==2.13.0 -e . -e integrations/maniskill'

_ICD_DIRECTORIES = ("/usr/share/vulkan/icd.d", "/etc/vulkan/icd.d", "/usr/local/share/vulkan/icd.d")
_VULKAN_ERROR_MARKERS = ("ErrorIncompatibleDriver", "rendering device", "vk::", "vulkan", "Vulkan")


class ManiSkillInstallError(RuntimeError):
    """ManiSkill cannot run here: ``cause`` says why, ``fix`` what to run."""

    def __init__(self, cause: str, fix: str):
        super().__init__(f"{cause}\n  fix: {fix}")
        self.cause, self.fix = cause, fix


@dataclass(frozen=True)
class InstallCheckResult:
    """What a successful check measured."""

    env_id: str
    num_steps: int
    steps_per_second: float
    obs_dim: int
    action_dim: int
    mani_skill_version: str
    sapien_version: str
    numpy_version: str


def installed_vulkan_icds() -> list[str]:
    """The Vulkan driver manifests the loader will see (``VK_DRIVER_FILES``/``VK_ICD_FILENAMES`` win)."""
    for variable in ("VK_DRIVER_FILES", "VK_ICD_FILENAMES"):
        if os.environ.get(variable):
            return [path for path in os.environ[variable].split(os.pathsep) if os.path.exists(path)]
    return sorted(path for directory in _ICD_DIRECTORIES for path in glob.glob(os.path.join(directory, "*.json")))


def _debian_package_version(package: str) -> str | None:
    try:
        completed = subprocess.run(
            ["dpkg-query", "-W", "-f=${db:Status-Status} ${Version}", package], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    status, _, version = completed.stdout.partition(" ")
    return version if completed.returncode == 0 and status == "installed" else None


def _diagnose(error: BaseException) -> ManiSkillInstallError:
    text = f"{type(error).__name__}: {error}"
    if "libvulkan" in text:
        return ManiSkillInstallError(f"the Vulkan loader libvulkan.so.1 is missing ({text})", BACKPORTS_INSTALL_COMMAND)
    if any(marker in text for marker in _VULKAN_ERROR_MARKERS):
        icds = installed_vulkan_icds()
        if not icds:
            cause = f"no Vulkan driver (ICD) is installed, and SAPIEN needs one even for state observations ({text})"
        else:
            mesa = _debian_package_version("mesa-vulkan-drivers")
            mesa_note = f" (mesa-vulkan-drivers {mesa}; Debian 12's Mesa 22 is too old for SAPIEN 3)" if mesa else ""
            cause = f"the installed Vulkan driver is incompatible{mesa_note}: {', '.join(icds)} ({text})"
        return ManiSkillInstallError(cause, BACKPORTS_INSTALL_COMMAND)
    return ManiSkillInstallError(f"creating or stepping a ManiSkill environment failed: {text}", "see the traceback above")


def check_installation(env_id: str = "PushCube-v1", num_steps: int = 100, seed: int = 0, check_numpy: bool = True) -> InstallCheckResult:
    """Creates ``env_id`` with state observations on ``physx_cpu``, resets it and takes random steps.

    Raises:
        ManiSkillInstallError: ManiSkill is not importable, numpy is 2.x (when ``check_numpy``),
            or creating or stepping the environment failed (the cause names a missing or
            incompatible Vulkan driver when that is what failed).
    """
    import numpy as np

    try:
        import gymnasium as gym
        import mani_skill
        import mani_skill.envs  # noqa: F401  (registers the environments)
        import sapien
    except ImportError as error:
        raise ManiSkillInstallError(f"ManiSkill is not importable ({error})", PIP_INSTALL_COMMAND) from error
    if check_numpy and int(np.__version__.split(".")[0]) >= 2:
        raise ManiSkillInstallError(
            f"numpy {np.__version__} is installed; ManiSkill's motion planner (mplib 0.1.1) segfaults under numpy 2",
            'pip install "numpy<2" "opencv-python<4.12"',
        )
    try:
        env = gym.make(env_id, obs_mode="state", sim_backend="physx_cpu")
        try:
            obs, _ = env.reset(seed=seed)
            env.action_space.seed(seed)
            start = time.perf_counter()
            for _ in range(num_steps):
                obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
                if bool(terminated) or bool(truncated):
                    env.reset()
            elapsed = time.perf_counter() - start
        finally:
            env.close()
    except Exception as error:  # noqa: BLE001  (any failure here is diagnosed and re-raised)
        raise _diagnose(error) from error
    return InstallCheckResult(
        env_id=env_id,
        num_steps=num_steps,
        steps_per_second=num_steps / elapsed,
        obs_dim=int(obs.shape[-1]),
        action_dim=int(env.action_space.shape[-1]),
        mani_skill_version=getattr(mani_skill, "__version__", "?"),
        sapien_version=getattr(sapien, "__version__", "?"),
        numpy_version=np.__version__,
    )


@functools.lru_cache(maxsize=None)
def find_installation_problem(env_id: str = "PushCube-v1") -> str | None:
    """``None`` when ManiSkill can create and step ``env_id`` here, else the cause in one line.

    The numpy version is not checked: the tests that use this to skip should fail, not skip,
    under numpy 2.
    """
    try:
        check_installation(env_id, num_steps=5, check_numpy=False)
    except ManiSkillInstallError as error:
        return f"ManiSkill cannot run here: {error.cause}"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mepoly_maniskill.install_check", description=__doc__.splitlines()[0])
    parser.add_argument("--env-id", default="PushCube-v1", help="ManiSkill task to create (default: PushCube-v1)")
    parser.add_argument("--steps", type=int, default=200, help="random steps to take (default: 200)")
    args = parser.parse_args(argv)
    try:
        result = check_installation(args.env_id, args.steps)
    except ManiSkillInstallError as error:
        print(f"ManiSkill install check FAILED: {error.cause}\n  fix: {error.fix}", file=sys.stderr)
        return 1
    print(
        f"ManiSkill install check passed: {result.env_id} on physx_cpu, obs dim {result.obs_dim}, action dim "
        f"{result.action_dim}, {result.steps_per_second:.0f} steps/s (mani_skill {result.mani_skill_version}, "
        f"sapien {result.sapien_version}, numpy {result.numpy_version}, Vulkan ICDs: {', '.join(installed_vulkan_icds()) or 'none'})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
