#!/usr/bin/env bash
# Build the Pyfhel wheel without GitHub: Pyfhel's bundled Microsoft SEAL would download
# GSL, zlib and zstd at build time; scripts/seal-offline.cmake takes them from the system
# (Debian: libmsgsl-dev zlib1g-dev libzstd-dev; a C++ compiler and the Python headers).
# Used by scripts/install.sh and docker/Dockerfile.
#   usage: scripts/build-pyfhel.sh PIP WHEEL_DIR     (does nothing if WHEEL_DIR has the wheel)
set -euo pipefail
PYFHEL_VERSION=3.5.0
PIP=$1
WHEELS=$2
HERE=$(cd "$(dirname "$0")" && pwd)

log() { printf '[build-pyfhel] %s\n' "$*" >&2; }

if ls "$WHEELS"/pyfhel-"$PYFHEL_VERSION"-*.whl >/dev/null 2>&1; then
  log "reusing the Pyfhel wheel in $WHEELS"
  exit 0
fi
log "building Pyfhel $PYFHEL_VERSION from source against system GSL/zlib/zstd (~3 min)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# --no-cache-dir: pip's own wheel cache may hold a Pyfhel built with other flags.
CMAKE_TOOLCHAIN_FILE="$HERE/seal-offline.cmake" \
LDFLAGS="-Wl,--no-as-needed -lz -lzstd" \
  "$PIP" wheel --no-cache-dir --no-deps --no-binary pyfhel "pyfhel==$PYFHEL_VERSION" -w "$tmp" >"$tmp/build.log" 2>&1 \
  || { tail -40 "$tmp/build.log" >&2; log "Pyfhel build failed (log above)"; exit 1; }
mkdir -p "$WHEELS"
mv "$tmp"/pyfhel-*.whl "$WHEELS"/
