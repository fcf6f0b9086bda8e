#!/usr/bin/env bash
# Set up what the demo and the tests need: system packages when missing, a virtual environment
# in .venv with the project installed (editable) and its extras. Safe to run again: it only does
# what is missing. Sourced by scripts/demo and scripts/test; EXTRAS picks the pip extras.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${EC_VENV:-$repo/.venv}"
extras="${EXTRAS:-all}"

say() { printf '[bootstrap] %s\n' "$*" >&2; }
die() { printf '[bootstrap] error: %s\n' "$*" >&2; exit 1; }

apt_install() {
    # apt_install PACKAGE... : install Debian/Ubuntu packages, as root or through sudo.
    local runner=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || die "need root or sudo to run: apt-get install $*"
        runner=(sudo)
    fi
    command -v apt-get >/dev/null 2>&1 || die "no apt-get here; install these yourself: $*"
    say "installing system packages: $*"
    "${runner[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    "${runner[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null \
        || die "apt-get install $* failed"
}

python=""
for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 \
        && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        python="$candidate"
        break
    fi
done
[ -n "$python" ] || die "Python 3.11 or newer is required (apt-get install python3)"

missing=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
"$python" -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
for pkg in ${EC_SYSTEM_PACKAGES:-}; do missing+=("$pkg"); done
if [ "${#missing[@]}" -gt 0 ]; then
    apt_install "${missing[@]}"
fi

if [ ! -x "$venv/bin/python" ]; then
    say "creating virtual environment $venv"
    "$python" -m venv "$venv"
fi
stamp="$venv/.edgecascade-$extras"
if [ ! -f "$stamp" ] || [ "$repo/pyproject.toml" -nt "$stamp" ]; then
    say "installing edgecascade[$extras] into $venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip >/dev/null
    pins=()
    # The train extra pulls in torch; an unpinned one is a CUDA build of several GB. Pin the CPU
    # build the model zoo is tested with.
    case ",$extras," in *,train,*) pins=("torch==2.13.0") ;; esac
    "$venv/bin/python" -m pip install --quiet -e "$repo[$extras]" "${pins[@]}"
    touch "$stamp"
fi
export PATH="$venv/bin:$PATH"
