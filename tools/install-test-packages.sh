#!/usr/bin/env bash
# Installs the Debian packages the tests need (tools/test-packages.txt), once; a no-op when
# they are all there. Needs root (or sudo) and Debian's package index, as on a fresh machine of
# the kind CI runs on. The main job (vitc build) needs none of them: only Swift and clang.
#   tools/install-test-packages.sh && swift test
set -euo pipefail
list="$(dirname "${BASH_SOURCE[0]}")/test-packages.txt"
missing=()
while read -r package proof; do
  case "$package" in ''|'#'*) continue ;; esac
  [ -e "$proof" ] || missing+=("$package")
done <"$list"
if [ "${#missing[@]}" -eq 0 ]; then
  echo "test packages: all installed"
  exit 0
fi
echo "test packages: installing ${missing[*]}"
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then
    sudo=(sudo)
  else
    echo "error: not root and no sudo; as root run: apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
for package in "${missing[@]}"; do
  proof="$(awk -v p="$package" '$1 == p { print $2 }' "$list")"
  [ -e "$proof" ] || { echo "error: $package installed but $proof is missing" >&2; exit 1; }
done
echo "test packages: installed"
