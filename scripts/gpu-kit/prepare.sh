#!/usr/bin/env bash
# Run once where the kit was unpacked: points its pkg-config and RapidJSON
# files at the kit's own folder (they name /usr). Running it again changes
# nothing.
#   bash prepare.sh      (from the kit's folder, or: bash KIT/prepare.sh)
set -euo pipefail
kit=$(cd "$(dirname "$0")" && pwd)
lib=$kit/usr/lib/x86_64-linux-gnu
sed -i -E "s#^([A-Za-z_]+=)/usr([/ ]|\$)#\\1$kit/usr\\2#" \
  "$lib"/pkgconfig/*.pc "$kit"/usr/share/pkgconfig/*.pc
sed -i "s#\"/usr/include\"#\"$kit/usr/include\"#" \
  "$kit/usr/share/cmake/RapidJSON/RapidJSONConfig.cmake" 2>/dev/null || true
echo "prepare: $kit"
