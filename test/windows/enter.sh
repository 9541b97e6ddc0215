#!/usr/bin/env bash
# Runs the Windows build of Deno under Wine inside the chroot that setup.sh built, in a private
# mount namespace (run it under `unshare --mount --propagation private`), so every mount below
# and the tmpfs holding this run's fresh WINEPREFIX vanish when it ends.
#
# Usage: enter.sh ROOT REPO DENO_VERSION DENO_ARGS...
#   REPO is bind-mounted read-only at /repo (Z:\repo for Windows) and is the working directory.
set -euo pipefail
root="$1" repo="$2" deno_version="$3"
shift 3

mount --make-rprivate / 2>/dev/null || true
mount --bind /proc "$root/proc"
mount --bind /dev "$root/dev"
mount --bind /dev/pts "$root/dev/pts"
# /tmp holds the WINEPREFIX (a fresh Credential Manager per run) and wineserver's socket.
mount -t tmpfs -o size=4g tmpfs "$root/tmp"
mkdir -p "$root/repo" "$root/var/cache/agent-runner-deno-dir"
mount --bind -o ro "$repo" "$root/repo"
cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true

# shellcheck disable=SC2016  # expanded by the inner shell
exec chroot "$root" /usr/bin/env -i \
  PATH=/usr/sbin:/usr/bin:/sbin:/bin \
  HOME=/tmp/home \
  XDG_RUNTIME_DIR=/tmp/runtime \
  WINEPREFIX=/tmp/wineprefix \
  WINEDEBUG=-all \
  WINEDLLOVERRIDES='mscoree,mshtml=' \
  DENO_DISABLE_NODE_SHIM=1 \
  'DENO_CERT=Z:\opt\host-ca.crt' \
  'DENO_DIR=Z:\var\cache\agent-runner-deno-dir' \
  DENO_NO_UPDATE_CHECK=1 \
  NO_COLOR=1 \
  /bin/sh -c '
    deno_version="$1"; shift
    mkdir -p "$HOME"
    mkdir -m 700 -p "$XDG_RUNTIME_DIR" # else Wine complains that it is unset, once per process
    cd /repo
    status=0
    wine "/opt/deno/$deno_version/deno.exe" "$@" || status=$?
    wineserver -k 2>/dev/null || true
    exit "$status"
  ' sh "$deno_version" "$@"
