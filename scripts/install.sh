#!/usr/bin/env bash
# Install facepp into .venv/ at the repository root, offline-safe except for the
# package registries. Idempotent: a second run reuses the cached Pyfhel wheel.
# On failure the half-built environment is removed, never left behind.
#
#   scripts/install.sh               what `make demo` needs: the build tools of Pyfhel, then .venv/
#   scripts/install.sh --test-tools  what only the tests add: Chromium (browser test) and PostgreSQL
#                                    (matcher storage test); without root it names them and goes on
#                                    (those tests skip, saying why)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV="$ROOT/.venv"
WHEELS="$ROOT/.cache/wheels"
PYTHON=${PYTHON:-python3}
# A C++ compiler, the Python headers and venv (a stock Debian 12 lacks them), and SEAL's
# GSL/zlib/zstd, to build Pyfhel from source (scripts/build-pyfhel.sh).
BUILD_PACKAGES=(g++ make python3-dev python3-venv libmsgsl-dev zlib1g-dev libzstd-dev)
TEST_PACKAGES=(chromium postgresql)

log() { printf '[install] %s\n' "$*" >&2; }

missing_system_packages() {
  local pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || printf '%s\n' "$pkg"
  done
}

# ensure_system_packages required|optional PACKAGE...: install what is missing as root;
# otherwise name it, then stop (required) or go on (optional).
ensure_system_packages() {
  local need=$1
  shift
  command -v dpkg-query >/dev/null || { log "not a Debian system: make sure $* are installed"; return; }
  local missing
  missing=$(missing_system_packages "$@" | tr '\n' ' ')
  [ -z "$missing" ] && return
  if [ "$(id -u)" -ne 0 ]; then
    log "missing system packages: $missing"
    log "run: sudo apt-get install -y $missing   then re-run this command"
    [ "$need" = optional ] && { log "going on without them: the tests that need them skip"; return; }
    exit 1
  fi
  log "installing system packages: $missing"
  apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
}

if [ "${1:-}" = --test-tools ]; then
  ensure_system_packages optional "${TEST_PACKAGES[@]}"
  exit 0
fi
[ $# -eq 0 ] || { log "usage: scripts/install.sh [--test-tools]"; exit 2; }

cleanup_on_failure() {
  local rc=$?
  if [ $rc -ne 0 ] && [ "${CREATED_VENV:-0}" = 1 ]; then
    log "install failed: removing the partial .venv"
    rm -rf "$VENV"
  fi
  exit $rc
}

ensure_system_packages required "${BUILD_PACKAGES[@]}"
CREATED_VENV=0
if [ ! -x "$VENV/bin/python" ]; then
  CREATED_VENV=1
  trap cleanup_on_failure EXIT
  log "creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip setuptools wheel
fi
rm -f "$VENV/.facepp-installed"
bash "$ROOT/scripts/build-pyfhel.sh" "$VENV/bin/pip" "$WHEELS"
log "installing facepp and its dependencies"
"$VENV/bin/pip" install -q --find-links "$WHEELS" -e ".[dev]"
"$VENV/bin/python" - <<'PY'
import Pyfhel, torch, torchvision, cv2, gmpy2  # fail now, not in the first test
import numpy as np
from facepp.vision.landmarks import LandmarkDetector
assert LandmarkDetector().detect(np.zeros((64, 64, 3), np.uint8)) == [], "dlib landmark models failed to load"
he = Pyfhel.Pyfhel(); he.contextGen(scheme="ckks", n=2**13, scale=2**30, qi_sizes=[60, 30, 30, 60]); he.keyGen()
assert abs(he.decryptFrac(he.encryptFrac(np.array([1.5])))[0] - 1.5) < 1e-3, "Pyfhel round trip failed"
print(f"[install] ok: torch {torch.__version__}, torchvision {torchvision.__version__}, "
      f"opencv {cv2.__version__}, Pyfhel {Pyfhel.__version__}, gmpy2 {gmpy2.version()}")
PY
"$VENV/bin/python" -m playwright --version >/dev/null 2>&1 || true
touch "$VENV/.facepp-installed"
