#!/usr/bin/env bash
# Installs what the ManiSkill 3 integration (mepoly_maniskill) needs, then checks it.
#
#   integrations/maniskill/install.sh [VENV_DIR]
#
# 1. A Vulkan driver. ManiSkill 3.0.1 / SAPIEN 3.0.3 open a Vulkan device even for state
#    observations. On a CPU-only Debian 12 (bookworm) machine that is Mesa's lavapipe from
#    bookworm-backports (mesa-vulkan-drivers 25.x + libvulkan1): bookworm's own Mesa 22 fails
#    with "vk::createInstanceUnique: ErrorIncompatibleDriver". The backports apt source is
#    added only when no apt source names it yet, and apt runs only when the installed
#    mesa-vulkan-drivers is missing or older than MIN_MESA_VERSION. Other systems are left
#    alone (install a Vulkan driver for your GPU, or a Mesa >= 23 lavapipe, yourself).
# 2. pip installs mepoly-dist and the mepoly-maniskill integration from this checkout into VENV_DIR
#    (created when missing; default: the Python found as python3), editable. torch is pinned
#    to TORCH_SPEC (default torch==2.13.0, the CPU build on this project's machines): an
#    unpinned torch pulls a multi-GB CUDA build.
# 3. python -m mepoly_maniskill.install_check creates PushCube-v1 on the CPU simulator and
#    steps it; it names the cause and exits non-zero when that fails.
#
# Running it again does nothing that is already done (apt and the source file are skipped;
# pip finds everything satisfied). Environment: TORCH_SPEC, MIN_MESA_VERSION, SKIP_APT=1,
# SKIP_CHECK=1.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv_dir="${1:-}"
torch_spec="${TORCH_SPEC:-torch==2.13.0}"
min_mesa_version="${MIN_MESA_VERSION:-23}"
backports_source=/etc/apt/sources.list.d/bookworm-backports.sources

say() { printf '[maniskill install] %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else say "need root (or sudo) for: $*"; return 1
    fi
}

installed_mesa_version() {
    dpkg-query -W -f='${db:Status-Status} ${Version}\n' mesa-vulkan-drivers 2>/dev/null \
        | awk '$1 == "installed" {print $2}' || true
}

install_vulkan_driver() {
    local codename="" mesa_version
    if [ -r /etc/os-release ]; then codename="$(. /etc/os-release && echo "${VERSION_CODENAME:-}")"; fi
    if [ "$codename" != bookworm ]; then
        say "not Debian 12 (bookworm): leaving the Vulkan driver to you (GPU driver, or Mesa >= $min_mesa_version lavapipe)"
        return 0
    fi
    mesa_version="$(installed_mesa_version)"
    if [ -n "$mesa_version" ] && dpkg --compare-versions "$mesa_version" ge "$min_mesa_version" \
            && { dpkg-query -W -f='${db:Status-Status}\n' libvulkan1 2>/dev/null || true; } | grep -qx installed; then
        say "mesa-vulkan-drivers $mesa_version and libvulkan1 already installed"
        return 0
    fi
    if grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        say "an apt source for bookworm-backports exists already"
    else
        say "adding $backports_source"
        as_root tee "$backports_source" >/dev/null <<'EOF'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    fi
    as_root apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        -t bookworm-backports mesa-vulkan-drivers libvulkan1
    say "installed mesa-vulkan-drivers $(installed_mesa_version)"
}

venv_python() {
    if [ -z "$venv_dir" ]; then command -v python3; return; fi
    if [ ! -x "$venv_dir/bin/python" ]; then
        say "creating the virtual environment $venv_dir"
        python3 -m venv "$venv_dir"
    fi
    echo "$venv_dir/bin/python"
}

install_python_packages() {
    say "pip install $torch_spec -e $repo_root -e $repo_root/integrations/maniskill into $("$python" -c 'import sys; print(sys.prefix)')"
    "$python" -m pip install -q "$torch_spec" -e "$repo_root" -e "$repo_root/integrations/maniskill"
}

if [ "${SKIP_APT:-0}" != 1 ]; then install_vulkan_driver; fi
python="$(venv_python)"
install_python_packages
if [ "${SKIP_CHECK:-0}" != 1 ]; then
    say "checking: $python -m mepoly_maniskill.install_check"
    "$python" -m mepoly_maniskill.install_check
fi
