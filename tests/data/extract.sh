#!/bin/sh
# Unpacks the bundled test data (the oracle checkpoints and goldens made with DeepSeek's own
# inference code, see oracle/README.md inside) into DEST, once. The archive is split into parts
# under 8 MB to keep git objects small.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
dest=$1
stamp="$dest/.oracle-$(cat "$here"/oracle.tar.xz.* | cksum | cut -d' ' -f1)"
[ -f "$stamp" ] && exit 0
rm -rf "$dest/oracle"
mkdir -p "$dest"
cat "$here"/oracle.tar.xz.* | xz -dc | tar -C "$dest" -xf -
touch "$stamp"
