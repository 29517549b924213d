#!/usr/bin/env bash
# Fetch the demo footage: vtest.avi (a real pedestrian recording, 768x576, 10 fps, 80 s) from
# Debian's opencv-doc package. Only that one file is kept; the .deb is downloaded, not installed.
set -euo pipefail
out=${1:-data/vtest.avi}
SHA256=45cddc9490be69345cbdab64ca583be65987e864ca408038e648db99e10516cf
member=./usr/share/doc/opencv-doc/examples/data/vtest.avi
[ -f "$out" ] && echo "$SHA256  $out" | sha256sum --quiet -c 2>/dev/null && exit 0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetching opencv-doc (Debian) for $out"
if ! (cd "$tmp" && apt-get download opencv-doc >/dev/null 2>&1); then
  # a fresh machine may have no package lists yet
  if [ "$(id -u)" = 0 ]; then apt-get update -qq; else sudo apt-get update -qq; fi
  (cd "$tmp" && apt-get download opencv-doc)
fi
mkdir -p "$(dirname "$out")"
dpkg-deb --fsys-tarfile "$tmp"/opencv-doc_*.deb | tar -xO "$member" > "$out.part"
echo "$SHA256  $out.part" | sha256sum --quiet -c
mv "$out.part" "$out"
echo "wrote $out"
