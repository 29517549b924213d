"""Hawkeye's per-clip feature files from the stream's scene graphs, on real vtest frames."""
import numpy as np
import pytest

from engines import create_engine
from stream.ingest.source import VideoSource
from stream.ingest.windows import WindowAssembler
from stream.scene.export import export_window
from stream.scene.graph import SceneBuilder
from stream.scene.people import PersonDetector
from stream.scene.pose import PoseEstimator, TopDown
from stream.scene.relations import GeometricRelations


@pytest.fixture(scope="module")
def graphs(models_dir, clip12):
    builder = SceneBuilder(TopDown(PersonDetector(create_engine("onnxruntime", models_dir / "ssdlite_person.onnx")),
                                   PoseEstimator(create_engine("onnxruntime", models_dir / "pose_landmark_full.onnx"))),
                           relations=GeometricRelations())
    asm = WindowAssembler("lobby", 4.0, 2.0, 2.0)
    out = []
    for f in VideoSource("lobby", str(clip12), is_file=True, replay="fast").frames():
        out += [builder.build(w) for w in asm.push(f.seq, f.ts, f.wall, f.pixels)]
    return out + [builder.build(w) for w in asm.finish()]


def test_every_second_gets_hawkeye_shaped_pose_and_relation_files(graphs, tmp_path):
    written = sorted(s for g in graphs for s in export_window(g, tmp_path, "vtest12"))
    assert written == list(range(12))                       # 12 s, each clip once despite overlapping windows
    posed = []
    for n in range(12):
        pose = np.load(tmp_path / "pose_feat" / "vtest12" / f"frame_{n}.npy")
        rel = np.load(tmp_path / "rel_feat" / "vtest12" / f"frame_{n}.npy")
        assert pose.shape == (5, 17, 5) and pose.dtype == np.float32
        assert rel.ndim == 2 and rel.shape[1] == 353 and len(rel) >= 1
        people = pose[pose[:, :, 4].any(axis=1)]
        posed.append(len(people))
        seen = people[..., 4] > 0
        assert np.all((people[..., 0][seen] >= 0) & (people[..., 0][seen] < 768))
        assert np.all(people[:, :, 3] == people[:, :1, 3])   # one track id per person row
        assert np.allclose(rel[:, :51].sum(1), 1.0) and np.allclose(rel[:, 51:202].sum(1), 1.0)
    assert min(posed) >= 1 and np.mean(posed) >= 2           # vtest's walkers (the smallest get no pose)
