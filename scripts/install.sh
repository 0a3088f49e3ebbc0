#!/usr/bin/env bash
# Install facepp into .venv/ at the repository root, offline-safe except for the
# package registries. Idempotent: a second run reuses the cached Pyfhel wheel.
# On failure the half-built environment is removed, never left behind.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV="$ROOT/.venv"
WHEELS="$ROOT/.cache/wheels"
PYTHON=${PYTHON:-python3}
PYFHEL_VERSION=3.5.0
# Pyfhel build deps; Chromium for the browser tests; PostgreSQL for the matcher storage tests.
SYSTEM_PACKAGES=(libmsgsl-dev zlib1g-dev libzstd-dev chromium postgresql)

log() { printf '[install] %s\n' "$*" >&2; }

missing_system_packages() {
  local pkg
  for pkg in "${SYSTEM_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || printf '%s\n' "$pkg"
  done
}

ensure_system_packages() {
  command -v dpkg-query >/dev/null || { log "not a Debian system: install ${SYSTEM_PACKAGES[*]} yourself"; return; }
  local missing
  missing=$(missing_system_packages | tr '\n' ' ')
  [ -z "$missing" ] && return
  if [ "$(id -u)" -ne 0 ]; then
    log "missing system packages: $missing"
    log "run: sudo apt-get install -y $missing   then re-run this command"
    exit 1
  fi
  log "installing system packages: $missing"
  apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
}

build_pyfhel_wheel() {
  if ls "$WHEELS"/pyfhel-"$PYFHEL_VERSION"-*.whl >/dev/null 2>&1; then
    log "reusing cached Pyfhel wheel in .cache/wheels"
    return
  fi
  log "building Pyfhel $PYFHEL_VERSION from source against system GSL/zlib/zstd (~3 min)"
  local tmp
  tmp=$(mktemp -d)
  # --no-cache-dir: pip's own wheel cache may hold a Pyfhel built with other flags.
  CMAKE_TOOLCHAIN_FILE="$ROOT/scripts/seal-offline.cmake" \
  LDFLAGS="-Wl,--no-as-needed -lz -lzstd" \
    "$VENV/bin/pip" wheel --no-cache-dir --no-deps --no-binary pyfhel \
      "pyfhel==$PYFHEL_VERSION" -w "$tmp" >"$tmp/build.log" 2>&1 \
    || { tail -40 "$tmp/build.log" >&2; log "Pyfhel build failed (log above)"; exit 1; }
  mkdir -p "$WHEELS"
  mv "$tmp"/pyfhel-*.whl "$WHEELS"/
  rm -rf "$tmp"
}

cleanup_on_failure() {
  local rc=$?
  if [ $rc -ne 0 ] && [ "${CREATED_VENV:-0}" = 1 ]; then
    log "install failed: removing the partial .venv"
    rm -rf "$VENV"
  fi
  exit $rc
}

ensure_system_packages
CREATED_VENV=0
if [ ! -x "$VENV/bin/python" ]; then
  CREATED_VENV=1
  trap cleanup_on_failure EXIT
  log "creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip setuptools wheel
fi
rm -f "$VENV/.facepp-installed"
build_pyfhel_wheel
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
