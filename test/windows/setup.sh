#!/usr/bin/env bash
# Builds, or reuses, the Wine 10 environment the Windows tests run in: a Debian trixie chroot
# (bookworm's Wine 8 cannot start V8; trixie's Wine 10 runs Deno's Windows build for real) with
# wine and the pinned Deno's Windows build (npm @deno/win32-x64) in /opt/deno. The chroot lives
# outside the repository; nothing of Wine touches the host's apt sources.
#
# Usage: setup.sh ROOT DENO_VERSION
# Exit 0: ROOT is ready. Exit 77: this machine cannot build or run it (one line on stderr,
# "test:windows skipped: <why>").
# Anything else: the setup failed (the log says where); a rerun resumes from the last finished
# step, each step being marked done only after it completed.
set -euo pipefail

root="${1:?usage: setup.sh ROOT DENO_VERSION}"
deno_version="${2:?usage: setup.sh ROOT DENO_VERSION}"
say() { printf 'wine setup: %s\n' "$*" >&2; }
# The one line a machine that cannot run the Wine tests prints (run.ts and .ci/run look for it).
skip() { printf 'test:windows skipped: %s\n' "$*" >&2; exit 77; }

[ "$(id -u)" = 0 ] || skip "running Wine in its chroot needs root (debootstrap, unshare, mount, chroot)"
command -v unshare >/dev/null 2>&1 || skip "unshare (util-linux) is not installed"

stamp="$root/.agent-runner-wine"
if [ -f "$stamp/ready-$deno_version" ]; then exit 0; fi

# One builder at a time (two CI jobs on one machine): the second waits, then finds it ready.
mkdir -p "$(dirname "$root")"
exec 9>"$root.setup-lock"
flock 9
if [ -f "$stamp/ready-$deno_version" ]; then exit 0; fi

command -v debootstrap >/dev/null 2>&1 || skip "debootstrap is not installed (apt-get install debootstrap)"
command -v npm >/dev/null 2>&1 || skip "npm is not installed (needed for @deno/win32-x64)"

# The Debian mirror this machine's apt already uses (deb822 first, then one-line sources).
mirror="$(sed -nE 's/^URIs:[[:space:]]*([^[:space:]]+).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null \
  | grep -v -- '-security' | head -1 || true)"
if [ -z "$mirror" ]; then
  mirror="$(sed -nE 's/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([^[:space:]]+).*/\2/p' \
    /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | grep -v -- '-security' | head -1 || true)"
fi
mirror="${mirror:-http://deb.debian.org/debian}"

mkdir -p "$root"
mkdir -p "$stamp"
started=$SECONDS

if [ ! -f "$stamp/debootstrap" ]; then
  say "debootstrap --variant=minbase trixie $root $mirror (about 4 minutes, once)"
  debootstrap --variant=minbase trixie "$root" "$mirror" >"$stamp/debootstrap.log" 2>&1 \
    || { say "debootstrap failed; last lines of $stamp/debootstrap.log:"; tail -5 "$stamp/debootstrap.log" >&2; exit 1; }
  touch "$stamp/debootstrap"
fi

if [ ! -f "$stamp/wine" ]; then
  say "apt-get install wine (about 2 minutes, once)"
  cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
  # A private mount namespace: the /proc, /dev and /tmp mounts vanish with this process.
  # shellcheck disable=SC2016  # expanded by the inner shell
  unshare --mount --propagation private -- sh -euc '
    root="$1"
    mount --bind /proc "$root/proc"
    mount --bind /dev "$root/dev"
    mount --bind /dev/pts "$root/dev/pts"
    mount -t tmpfs tmpfs "$root/tmp"
    chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
      sh -euc "apt-get update -qq && apt-get install -y -qq --no-install-recommends wine wine64 >/dev/null && apt-get clean"
  ' sh "$root" >"$stamp/wine.log" 2>&1 \
    || { say "installing wine failed; last lines of $stamp/wine.log:"; tail -5 "$stamp/wine.log" >&2; exit 1; }
  chroot "$root" test -x /usr/bin/wine || { say "no /usr/bin/wine in $root after the install"; exit 1; }
  touch "$stamp/wine"
fi

# The CA bundle the Windows Deno trusts for npm downloads (DENO_CERT).
cp /etc/ssl/certs/ca-certificates.crt "$root/opt/host-ca.crt" 2>/dev/null \
  || { mkdir -p "$root/opt" && cp /etc/ssl/certs/ca-certificates.crt "$root/opt/host-ca.crt"; }

if [ ! -f "$root/opt/deno/$deno_version/deno.exe" ]; then
  say "npm pack @deno/win32-x64@$deno_version"
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack --silent "@deno/win32-x64@$deno_version" >/dev/null) \
    || { say "npm pack @deno/win32-x64@$deno_version failed"; exit 1; }
  tar -xzf "$work"/deno-win32-x64-*.tgz -C "$work" package/deno.exe
  mkdir -p "$root/opt/deno/$deno_version"
  mv "$work/package/deno.exe" "$root/opt/deno/$deno_version/deno.exe.partial"
  mv "$root/opt/deno/$deno_version/deno.exe.partial" "$root/opt/deno/$deno_version/deno.exe"
fi

touch "$stamp/ready-$deno_version"
say "ready in $((SECONDS - started)) s: $(du -sh "$root" 2>/dev/null | cut -f1) in $root"
