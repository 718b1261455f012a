#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian/Ubuntu machine (or any machine, as far as it can):
#   1. system packages the tools and tests use (when root and apt-get are there);
#   2. .venv with requirements.txt (the controller, on a current protobuf);
#   3. the P4 toolchain: found on PATH or under $P4_PREFIX; otherwise, where p4lang publishes
#      packages (Ubuntu, Debian), installed from them; otherwise one line saying what is
#      missing and which tests will skip;
#   4. the P4 program compiled into build/ when p4c is there.
# Options: --with-shell   also make .venv-shell with p4runtime-shell (the operator's shell;
#                         it pins an old protobuf, so it never shares the controller's venv)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
. scripts/p4_toolchain.sh

with_shell=no
for arg in "$@"; do
    case $arg in
        --with-shell) with_shell=yes ;;
        *) echo "setup.sh: unknown option $arg (known: --with-shell)" >&2; exit 2 ;;
    esac
done

say() { printf 'setup: %s\n' "$*"; }

# ---- 1. system packages --------------------------------------------------------------
apt_packages=(python3-venv tshark tcpdump tcpreplay iproute2 ethtool mininet ngrep sip-tester)
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    missing=()
    for p in "${apt_packages[@]}"; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        say "installing ${missing[*]}"
        apt-get update -qq
        # No Recommends: mininet's would pull in Open vSwitch, which the topologies do not use.
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
else
    say "not root or no apt-get: make sure ${apt_packages[*]} are installed"
fi

# ---- 2. Python environment -------------------------------------------------------------
python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    say "creating .venv"
    "$python" -m venv .venv
fi
stamp=.venv/.requirements.sha
want=$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "installing requirements.txt and this project (the p4dispatch command) into .venv"
    .venv/bin/pip install -q --upgrade pip >/dev/null
    .venv/bin/pip install -q -r requirements.txt
    # (setuptools warns at length about editable installs: quiet unless it fails)
    .venv/bin/pip install -q --no-deps -e . >/dev/null 2>&1 || .venv/bin/pip install --no-deps -e .
    echo "$want" > "$stamp"
fi
# Mininet is a Debian package (a module of the system python). Link only that module into
# .venv: all of dist-packages on the path would let old system packages shadow the venv's.
mininet_dir=$(/usr/bin/python3 -c 'import mininet, os; print(os.path.dirname(mininet.__file__))' 2>/dev/null || true)
if [ -n "$mininet_dir" ]; then
    mkdir -p .venv/system-mininet
    ln -sfn "$mininet_dir" .venv/system-mininet/mininet
    site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    echo "$root/.venv/system-mininet" > "$site/system_mininet.pth"
else
    say "mininet not installed: the Mininet tests and the cluster demo will skip"
fi
if [ $with_shell = yes ] && [ ! -x .venv-shell/bin/python ]; then
    say "creating .venv-shell with p4runtime-shell"
    "$python" -m venv .venv-shell
    .venv-shell/bin/pip install -q p4runtime-shell
fi

# ---- 3. P4 toolchain ----------------------------------------------------------------------
have_toolchain() { p4_tool p4c-bm2-ss >/dev/null && p4_tool simple_switch_grpc >/dev/null; }

install_p4lang_packages() {
    # p4lang publishes p4c and BMv2 packages for Ubuntu and Debian on the openSUSE Build Service.
    [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && [ -r /etc/os-release ] || return 1
    . /etc/os-release
    local dist
    case "${ID:-}" in
        ubuntu) dist="xUbuntu_${VERSION_ID}" ;;
        debian) dist="Debian_${VERSION_ID}" ;;
        *) return 1 ;;
    esac
    local repo="https://download.opensuse.org/repositories/home:/p4lang/${dist}"
    say "installing p4lang-p4c and p4lang-bmv2 from the p4lang packages for ${dist}"
    command -v curl >/dev/null && command -v gpg >/dev/null || apt-get install -y -qq curl gpg >/dev/null
    local key
    key=$(mktemp)
    curl -fsSL --max-time 30 -o "$key" "${repo}/Release.key" || { rm -f "$key"; return 1; }
    gpg --dearmor < "$key" > /etc/apt/trusted.gpg.d/home_p4lang.gpg
    rm -f "$key"
    echo "deb ${repo}/ /" > /etc/apt/sources.list.d/home-p4lang.list
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq p4lang-p4c p4lang-bmv2 >/dev/null
}

if have_toolchain; then
    say "P4 toolchain: $(p4_tool p4c-bm2-ss), $(p4_tool simple_switch_grpc)"
elif install_p4lang_packages 2>/dev/null && have_toolchain; then
    say "P4 toolchain installed from p4lang packages"
else
    rm -f /etc/apt/sources.list.d/home-p4lang.list 2>/dev/null || true
    say "P4 toolchain missing (p4c-bm2-ss, simple_switch_grpc not on PATH or under \$P4_PREFIX, and p4lang packages could not be installed here): BMv2, PTF and replay tests will skip"
fi

# ---- 4. build ----------------------------------------------------------------------------
if p4_tool p4c-bm2-ss >/dev/null; then
    bash scripts/build_p4.sh
fi
say "done"
