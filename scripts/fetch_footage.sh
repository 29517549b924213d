#!/usr/bin/env bash
# Fetch the real footage the demo and the tests use from Debian's opencv-doc package: vtest.avi
# (pedestrians, 768x576, 10 fps, 80 s: the demo) and Megamind_bugy.avi (270 frames at 30 fps whose
# PTS come out of order: the clock tests), and two photographs whose ImageNet classes are known,
# baboon.jpg (372) and orange.jpg (950): the appearance encoder's check. Only these files are kept; the .deb is downloaded,
# not installed. Usage: scripts/fetch_footage.sh [FOLDER]   (default: data)
set -euo pipefail
dir=${1:-data}
declare -A SHA256=(
  [vtest.avi]=45cddc9490be69345cbdab64ca583be65987e864ca408038e648db99e10516cf
  [Megamind_bugy.avi]=b82dd32d5444031d1a46a133e7554be7b80c54d12e3503a1b1332a540218e22c
  [baboon.jpg]=1a1dd18d78eec44420af3b0b7f08ee3d41c982916cae3ce203d7ff35d754cc0f
  [orange.jpg]=152c20d2f380ac985de25e474e1a5f06ed34b932191342099b8272a63a15a079
)
have() { [ -f "$dir/$1" ] && echo "${SHA256[$1]}  $dir/$1" | sha256sum --quiet -c 2>/dev/null; }
missing=()
for name in "${!SHA256[@]}"; do have "$name" || missing+=("$name"); done
[ ${#missing[@]} -eq 0 ] && exit 0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetching opencv-doc (Debian) for ${missing[*]}"
if ! (cd "$tmp" && apt-get download opencv-doc >/dev/null 2>&1); then
  # a fresh machine may have no package lists yet
  if [ "$(id -u)" = 0 ]; then apt-get update -qq; else sudo apt-get update -qq; fi
  (cd "$tmp" && apt-get download opencv-doc)
fi
mkdir -p "$dir"
for name in "${missing[@]}"; do
  dpkg-deb --fsys-tarfile "$tmp"/opencv-doc_*.deb | tar -xO "./usr/share/doc/opencv-doc/examples/data/$name" > "$dir/$name.part"
  echo "${SHA256[$name]}  $dir/$name.part" | sha256sum --quiet -c
  mv "$dir/$name.part" "$dir/$name"
  echo "wrote $dir/$name"
done
