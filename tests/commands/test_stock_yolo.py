"""ultralytics' own ``yolo`` command runs SpikeYOLO checkpoints when spikeyolo is installed.

The checkpoint pickles our classes by module path (``spikeyolo.nn.model.SpikeDetectionModel``),
so the stock loader imports them from the installed package; nothing is registered or patched.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from spikeyolo import SpikeYOLO

YOLO = shutil.which("yolo", path=str(Path(sys.executable).parent))


def _yolo(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "YOLO_VERBOSE": "True"}  # the validation table is part of what is checked
    r = subprocess.run([YOLO, *argv], capture_output=True, text=True, timeout=180, env=env, cwd=cwd)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


def _sorted_rows(a: np.ndarray) -> np.ndarray:
    """Rows in lexicographic order (boxes of equal score may come out of NMS in either order)."""
    return a[np.lexsort(a.T[::-1])]


def test_yolo_val_runs_our_checkpoint(checkpoint, tiny_data, tmp_path):
    r = _yolo("val", f"model={checkpoint}", f"data={tiny_data}", "imgsz=64", f"project={tmp_path}", "name=val", cwd=tmp_path)
    out = r.stdout + r.stderr
    assert "snn_YOLOv8n summary (fused)" in out  # our model, fused by ultralytics' AutoBackend
    assert any(line.split()[:3] == ["all", "8", "37"] for line in out.splitlines())  # 8 images, 37 boxes


def test_yolo_predict_gives_our_detections(checkpoint, tiny_data, tmp_path):
    images = sorted((tiny_data.parent / "images" / "val").glob("*.jpg"))[:3]
    folder = tmp_path / "images"
    folder.mkdir()
    for f in images:
        shutil.copy(f, folder)
    common = {"imgsz": 64, "conf": 0.001, "max_det": 20}
    _yolo("predict", f"model={checkpoint}", f"source={folder}", *(f"{k}={v}" for k, v in common.items()),
          "save_txt=True", "save_conf=True", f"project={tmp_path}", "name=pred", cwd=tmp_path)
    ours = SpikeYOLO(checkpoint).predict([str(f) for f in images], verbose=False, **common)
    assert sum(len(r.boxes) for r in ours) > 0
    for f, r in zip(images, ours):
        rows = np.loadtxt(tmp_path / "pred" / "labels" / f"{f.stem}.txt", ndmin=2)  # class, xywhn, conf
        expected = np.column_stack([r.boxes.cls.numpy(), r.boxes.xywhn.numpy(), r.boxes.conf.numpy()])
        assert rows.shape == expected.shape and np.allclose(_sorted_rows(rows), _sorted_rows(expected), atol=1e-5)
