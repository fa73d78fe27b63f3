# Shared by image/build, image/build-deb and image/boot-test: paths, progress lines, the Debian mirror,
# the apt download cache that mmdebstrap reuses between runs.
# shellcheck shell=bash

IMAGE_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REPO_DIR=$(cd "$IMAGE_DIR/.." && pwd)
SUITE=${STRATUM1_SUITE:-trixie}
# A pinned snapshot (e.g. STRATUM1_SNAPSHOT=20261201T000000Z) makes a build reproducible from its date.
if [ -n "${STRATUM1_SNAPSHOT:-}" ]; then
  MIRROR=${STRATUM1_MIRROR:-http://snapshot.debian.org/archive/debian/$STRATUM1_SNAPSHOT}
else
  MIRROR=${STRATUM1_MIRROR:-http://deb.debian.org/debian}
fi
CACHE_DIR=${STRATUM1_CACHE:-$IMAGE_DIR/out/cache}
T0=${T0:-$(date +%s)}

step() { printf '[%4ds] %s\n' "$(($(date +%s) - T0))" "$*" >&2; }
# Lines on stdin to the log file $1 with the seconds since T0; the milestones (mmdebstrap's I: lines, dpkg's
# "Setting up", the hooks' own lines) also to stderr, so a long build shows where it is.
progress() {
  local line
  : >"$1"
  while IFS= read -r line; do
    line=$(printf '[%4ds] %s' "$(($(date +%s) - T0))" "$line")
    printf '%s\n' "$line" >>"$1"
    case $line in
      *"] I: "* | *"] Setting up "* | *"]   customize: "* | *"]   install-deb: "* | *"] E: "* | *"] W: "*) printf '%s\n' "$line" >&2 ;;
    esac
  done
}
die() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; exit 1; }

# mmdebstrap arguments that keep the downloaded .debs in $CACHE_DIR/apt-<suite>-<arch> between runs.
apt_cache_args() {
  local dir="$CACHE_DIR/apt-$SUITE-$1"
  mkdir -p "$dir"
  printf '%s\n' \
    --skip=essential/unlink \
    --setup-hook='mkdir -p "$1"/var/cache/apt/archives/' \
    --setup-hook="sync-in '$dir' /var/cache/apt/archives/" \
    --customize-hook="sync-out /var/cache/apt/archives '$dir'" \
    --skip=download/empty
}

# The repository's files as they are now (tracked and new, not ignored), copied to $1.
copy_tree() {
  mkdir -p "$1"
  if git -C "$REPO_DIR" rev-parse --git-dir >/dev/null 2>&1; then
    git -C "$REPO_DIR" ls-files -co --exclude-standard -z | tar -C "$REPO_DIR" --null -T - -cf - | tar -C "$1" -xf -
  else
    tar -C "$REPO_DIR" --exclude=./image/out --exclude=./build --exclude=.tox --exclude='*.so' -cf - . | tar -C "$1" -xf -
  fi
}

# remove_work DIR: remove a work directory and nothing outside it. An mmdebstrap killed in the middle
# (the job timed out, Ctrl-C) leaves /proc, /sys, /dev/pts and /dev/shm mounted in its chroot under DIR: a
# plain rm -rf would descend into them (into the host's files, through any bind mount). Every mount under
# DIR is unmounted first, deepest first (lazily if busy), and rm never crosses into one that remains.
remove_work() {
  local dir=$1 m
  [ -n "$dir" ] && [ -d "$dir" ] || return 0
  dir=$(readlink -f "$dir")
  while IFS= read -r m; do
    umount "$m" 2>/dev/null || umount --lazy "$m" 2>/dev/null || true
  done < <(awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r)
  rm -rf --one-file-system "$dir"
}
