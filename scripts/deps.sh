#!/bin/bash
# Installs the Debian 12 packages deepcast needs to build and test (only the missing ones).
set -euo pipefail
pkgs="build-essential cmake pkg-config libcjson-dev libxxhash-dev libpcre2-dev libutf8proc-dev zlib1g-dev libomp-dev
      xz-utils python3 clang"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
echo "deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq $missing >/dev/null
