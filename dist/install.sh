#!/bin/sh
# Installs agent-runner-auth on Linux (glibc) and macOS, without root:
#
#   curl -fsSL https://github.com/copebit/agent-runner-auth/releases/latest/download/install.sh | sh
#   curl -fsSL …/install.sh | sh -s -- --version 0.1.0 --prefix /opt/agent-runner
#
# Downloads the release archive for this OS and CPU and the release's SHA256SUMS, refuses to
# install unless the archive's SHA-256 matches its entry, checks that the binary runs, then
# moves it into place with one rename (an existing install is replaced atomically, a running
# one keeps its old file). Windows: `winget install copebit.AgentRunnerAuth`.
#
# AGENT_RUNNER_INSTALL_BASE_URL replaces https://github.com/copebit/agent-runner-auth/releases
# (a mirror, or the tests' loopback server); it must serve the same layout:
#   <base>/latest/download/SHA256SUMS and <base>/download/v<version>/<file>.
#
# POSIX sh (checked with dash and shellcheck). Everything runs inside main(), called on the
# last line, so a script cut off mid-download by `curl | sh` runs nothing.

set -eu

NAME=agent-runner-auth
RELEASES=https://github.com/copebit/agent-runner-auth/releases

say() { printf '%s\n' "$NAME install: $*" >&2; }
die() {
  say "error: $*"
  exit 1
}

usage() {
  cat <<EOF
Install $NAME into ~/.local/bin (no root needed).

usage: install.sh [--version X.Y.Z] [--prefix DIR]
  --version X.Y.Z  the release to install (default: the latest)
  --prefix DIR     install into DIR/bin (default: ~/.local)
  -h, --help       this text

env: AGENT_RUNNER_INSTALL_BASE_URL  release mirror (default $RELEASES)
EOF
}

# fetch URL FILE: download with curl or wget; fails on HTTP errors and cut-off transfers.
fetch() {
  if command -v curl >/dev/null 2>&1; then
    case $1 in
      https://*) set -- "$1" "$2" --proto =https --proto-redir =https --tlsv1.2 ;;
    esac
    url=$1
    out=$2
    shift 2
    rc=0
    curl -fsSL --retry 2 --connect-timeout 20 --speed-limit 1 --speed-time 60 "$@" -o "$out" "$url" || rc=$?
    [ "$rc" -eq 0 ] || die "download failed (curl exit $rc): $url"
  elif command -v wget >/dev/null 2>&1; then
    rc=0
    wget -q --tries=1 --timeout=20 -O "$2" "$1" || rc=$?
    [ "$rc" -eq 0 ] || die "download failed (wget exit $rc): $1"
  else
    die "needs curl or wget to download"
  fi
}

# sha256 FILE: lowercase hex digest.
sha256() {
  if command -v sha256sum >/dev/null 2>&1; then
    sum=$(sha256sum "$1")
  elif command -v shasum >/dev/null 2>&1; then
    sum=$(shasum -a 256 "$1")
  elif command -v openssl >/dev/null 2>&1; then
    sum=$(openssl dgst -sha256 "$1")
    sum=${sum##*= }
  else
    die "needs sha256sum, shasum or openssl to verify the download"
  fi
  printf '%s\n' "${sum%% *}" | tr 'A-F' 'a-f'
}

# detect_target: prints the release target for this machine, or dies naming what is unsupported.
detect_target() {
  os=$(uname -s)
  cpu=$(uname -m)
  case $os in
    Linux) os_part=unknown-linux-gnu ;;
    Darwin) os_part=apple-darwin ;;
    MINGW* | MSYS* | CYGWIN* | Windows_NT)
      die "Windows is not supported by this script: run 'winget install copebit.AgentRunnerAuth' (or get the .zip from $RELEASES)"
      ;;
    *) die "unsupported operating system '$os': releases exist for Linux and macOS (and Windows through winget)" ;;
  esac
  case $cpu in
    x86_64 | amd64) cpu=x86_64 ;;
    aarch64 | arm64) cpu=aarch64 ;;
    *) die "unsupported CPU '$cpu' on $os: releases exist for x86_64 and arm64 (aarch64)" ;;
  esac
  # An x86_64 shell under Rosetta on Apple silicon gets the native build.
  if [ "$os" = Darwin ] && [ "$cpu" = x86_64 ] &&
    [ "$(sysctl -n sysctl.proc_translated 2>/dev/null || true)" = 1 ]; then
    cpu=aarch64
  fi
  # deno compile targets glibc only; a musl system (Alpine) cannot run the binary.
  if [ "$os" = Linux ] && command -v ldd >/dev/null 2>&1 && ldd --version 2>&1 | grep -qi musl; then
    die "this Linux uses musl libc (e.g. Alpine); the release binaries need glibc"
  fi
  printf '%s-%s\n' "$cpu" "$os_part"
}

# sums_entry SUMS_FILE PATTERN: prints "<sha256> <file>" of the first entry whose file name
# matches the shell PATTERN.
sums_entry() {
  while read -r hash file || [ -n "${hash:-}" ]; do
    file=${file#\*}
    # shellcheck disable=SC2254 # $2 is a pattern on purpose
    case $file in
      $2)
        if [ "${#hash}" -eq 64 ] && [ -z "$(printf '%s' "$hash" | tr -d '0-9a-fA-F')" ]; then
          printf '%s %s\n' "$hash" "$file"
          return 0
        fi
        ;;
    esac
  done <"$1"
  return 1
}

path_hint() {
  bindir=$1
  case ":${PATH:-}:" in
    *":$bindir:"*) return 0 ;;
  esac
  shown=$bindir
  case $bindir in
    "$HOME"/*) shown="\$HOME/${bindir#"$HOME"/}" ;;
  esac
  say "$bindir is not on your PATH; add it with:"
  case ${SHELL:-} in
    */zsh) say "  echo 'export PATH=\"$shown:\$PATH\"' >> ~/.zshrc && exec zsh" ;;
    */bash) say "  echo 'export PATH=\"$shown:\$PATH\"' >> ~/.bashrc && exec bash" ;;
    */fish) say "  fish_add_path $bindir" ;;
    *) say "  echo 'export PATH=\"$shown:\$PATH\"' >> ~/.profile   (then log in again)" ;;
  esac
}

libsecret_hint() {
  for f in /usr/lib/*/libsecret-1.so.0 /usr/lib64/libsecret-1.so.0 /usr/lib/libsecret-1.so.0 \
    /lib/*/libsecret-1.so.0; do
    [ -e "$f" ] && return 0
  done
  say "note: tokens are kept in the Secret Service through libsecret, which is not installed:"
  say "  install libsecret (Debian/Ubuntu: libsecret-1-0) and gnome-keyring, or use pass"
}

main() {
  version=
  prefix=
  while [ $# -gt 0 ]; do
    case $1 in
      --version)
        [ $# -ge 2 ] || die "--version needs a value, e.g. --version 0.1.0"
        version=$2
        shift 2
        ;;
      --version=*)
        version=${1#*=}
        shift
        ;;
      --prefix)
        [ $# -ge 2 ] || die "--prefix needs a directory"
        prefix=$2
        shift 2
        ;;
      --prefix=*)
        prefix=${1#*=}
        shift
        ;;
      -h | --help)
        usage
        return 0
        ;;
      *) die "unknown option '$1' (see --help)" ;;
    esac
  done
  if [ -z "$prefix" ]; then
    [ -n "${HOME:-}" ] || die "HOME is not set: pass --prefix DIR"
    prefix=$HOME/.local
  fi
  # A relative --prefix is taken from here, and made absolute so the PATH advice works from
  # any directory.
  case $prefix in
    /*) ;;
    *) prefix=$(pwd -P)/${prefix#./} ;;
  esac
  version=${version#v}
  case $version in
    *[!0-9A-Za-z.+-]*) die "not a version: '$version'" ;;
  esac
  base=${AGENT_RUNNER_INSTALL_BASE_URL:-$RELEASES}
  base=${base%/}
  bindir=${prefix%/}/bin
  dest=$bindir/$NAME

  target=$(detect_target)
  umask 022
  tmp=$(mktemp -d 2>/dev/null || mktemp -d -t "$NAME")
  staged=
  trap 'rm -rf "$tmp"; [ -z "$staged" ] || rm -f "$staged"' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM

  if [ -n "$version" ]; then
    sums_url=$base/download/v$version/SHA256SUMS
  else
    sums_url=$base/latest/download/SHA256SUMS
  fi
  fetch "$sums_url" "$tmp/SHA256SUMS"
  if [ -n "$version" ]; then
    entry=$(sums_entry "$tmp/SHA256SUMS" "$NAME-$version-$target.tar.gz") ||
      die "SHA256SUMS of v$version has no entry for $NAME-$version-$target.tar.gz: no $target build in that release"
  else
    entry=$(sums_entry "$tmp/SHA256SUMS" "$NAME-*-$target.tar.gz") ||
      die "the latest release's SHA256SUMS has no $NAME-*-$target.tar.gz entry: no $target build"
    version=${entry#* "$NAME"-}
    version=${version%-"$target".tar.gz}
    case $version in
      "" | *[!0-9A-Za-z.+-]*) die "the latest release's SHA256SUMS names an odd version: '$version'" ;;
    esac
  fi
  expected=$(printf '%s\n' "${entry%% *}" | tr 'A-F' 'a-f')
  archive=${entry#* }

  say "downloading $NAME $version for $target"
  fetch "$base/download/v$version/$archive" "$tmp/$archive"
  actual=$(sha256 "$tmp/$archive")
  if [ "$actual" != "$expected" ]; then
    die "checksum mismatch for $archive (expected $expected, got $actual): the download is corrupt or was altered; nothing was installed"
  fi

  mkdir "$tmp/x"
  tar -xzf "$tmp/$archive" -C "$tmp/x" "$NAME" 2>/dev/null ||
    die "$archive does not contain $NAME; nothing was installed"
  chmod 755 "$tmp/x/$NAME"
  # Runs once before it replaces anything (this also warms the compiled binary's code cache).
  new_version=$("$tmp/x/$NAME" --version 2>&1 </dev/null) ||
    die "the downloaded $NAME does not run on this machine ($new_version); nothing was installed"

  mkdir -p "$bindir" || die "cannot create $bindir"
  old_version=
  if [ -x "$dest" ]; then
    old_version=$("$dest" --version 2>/dev/null </dev/null || true)
  fi
  # Same directory, so the final mv is one rename(2): no moment without a working binary.
  staged=$bindir/.$NAME.new.$$
  cp "$tmp/x/$NAME" "$staged" || die "cannot write to $bindir"
  chmod 755 "$staged"
  mv -f "$staged" "$dest" || die "cannot replace $dest"
  staged=

  if [ -n "$old_version" ]; then
    say "upgraded $dest: $old_version -> $new_version"
  else
    say "installed $dest ($new_version)"
  fi
  path_hint "$bindir"
  found=$(command -v "$NAME" 2>/dev/null || true)
  if [ -n "$found" ] && [ "$found" != "$dest" ]; then
    say "warning: $found comes first on your PATH and shadows $dest"
  fi
  if [ "$(uname -s)" = Linux ]; then libsecret_hint; fi
  say "next: $NAME login --help"
}

main "$@"
