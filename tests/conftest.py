"""Shared fixtures: the real demo footage, the prepared models, short real clips, free ports."""
from __future__ import annotations

import socket
from pathlib import Path

import av
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"


# Fixtures that cost a minute or start a real peer: a test that needs one is `slow` (`make test-fast`
# leaves it out), as are whole-pipeline, browser and Ray modules (their own `pytestmark`).
SLOW_FIXTURES = {"bank", "tiny_bench", "tiny_gt", "real_set", "mosquitto"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def _need(path: Path, how: str) -> Path:
    if not path.exists():
        pytest.fail(f"{path} is missing: run `{how}` (the README's test command does)", pytrace=False)
    return path


@pytest.fixture(scope="session")
def vtest() -> Path:
    return _need(ROOT / "data" / "vtest.avi", "make data")


@pytest.fixture(scope="session")
def megamind() -> Path:
    """Debian opencv-doc's Megamind_bugy.avi: 270 frames at 30 fps (9.0 s) whose PTS come out of order."""
    return _need(ROOT / "data" / "Megamind_bugy.avi", "make data")


@pytest.fixture(scope="session")
def models_dir() -> Path:
    _need(ROOT / "models" / "manifest.json", "make models")
    return ROOT / "models"


@pytest.fixture(scope="session")
def reference() -> dict[str, np.ndarray]:
    """Outputs of the original TensorFlow / TFLite runtimes (tests/fixtures/make_reference.py)."""
    return dict(np.load(FIXTURES / "reference_outputs.npz"))


def cut_clip(src: Path, dst: Path, seconds: float) -> Path:
    """Re-encode the first `seconds` of a real video (same size and rate) for short tests."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        s_in = inp.streams.video[0]
        s_out = out.add_stream("mpeg4", rate=s_in.average_rate)
        s_out.width, s_out.height, s_out.pix_fmt = s_in.width, s_in.height, "yuv420p"
        s_out.bit_rate = 2_000_000
        for frame in inp.decode(s_in):
            if frame.time >= seconds:
                break
            frame.pts = None
            out.mux(s_out.encode(frame))
        out.mux(s_out.encode(None))
    return dst


@pytest.fixture(scope="session")
def clip12(vtest, tmp_path_factory) -> Path:
    """The first 12 s of vtest.avi (120 frames at 10 fps)."""
    return cut_clip(vtest, tmp_path_factory.mktemp("clips") / "vtest12.avi", 12.0)


@pytest.fixture(scope="session")
def vtest_frames(vtest) -> list[np.ndarray]:
    """Eight real BGR frames, 5 s apart."""
    out = []
    with av.open(str(vtest)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i % 50 == 0:
                out.append(f.to_ndarray(format="bgr24"))
            if len(out) == 8:
                break
    return out


@pytest.fixture
def free_endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"
