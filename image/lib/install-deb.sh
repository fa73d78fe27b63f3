#!/usr/bin/env bash
# mmdebstrap customize hook of image/build: install the stratum1 arm64 .deb into the root ($1) once
# image/build's package job ($2/deb.rc) has finished; apt resolves its dependencies from the archive.
set -euo pipefail
R=$1 W=$2
waited=0
while [ ! -s "$W/deb.rc" ]; do
  [ $((waited % 60)) != 0 ] || printf '  install-deb: waiting for the arm64 package build (%d s)\n' "$waited" >&2
  sleep 5
  waited=$((waited + 5))
done
if [ "$(cat "$W/deb.rc")" != 0 ]; then
  tail -n 40 "$W/deb.log" >&2 2>/dev/null || true
  echo "the arm64 .deb build failed" >&2
  exit 1
fi
deb=$(ls "$W"/deb/stratum1_*_arm64.deb)
cp "$deb" "$R/tmp/"
chroot "$R" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "/tmp/$(basename "$deb")" \
  >"$W/stratum1-install.log" 2>&1 || { tail -n 40 "$W/stratum1-install.log" >&2; exit 1; }
rm -f "$R/tmp/$(basename "$deb")"
