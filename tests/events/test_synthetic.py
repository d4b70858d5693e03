"""Synthetic recordings: exact Gen1 files, deterministic, events where the labelled objects move."""

import numpy as np
import pytest

from spikeyolo.commands.cli import main
from spikeyolo.events.dat import DatFile
from spikeyolo.events.labels import read_boxes
from spikeyolo.events import synthetic
from spikeyolo.events.synthetic import generate_recordings, simulate_recording

from .conftest import TINY


def test_recordings_are_gen1_files_with_labels(raw_gen1):
    dats = sorted(raw_gen1.glob("*/*_td.dat"))
    assert [p.parent.name for p in dats] == ["test", "test", "train", "train", "train"]
    for dat_path in dats:
        dat = DatFile(dat_path)  # checks order and coordinates
        boxes = read_boxes(str(dat_path).replace("_td.dat", "_bbox.npy"))
        assert (dat.height, dat.width) == (240, 304) and len(dat) > 10_000
        assert dat.duration_us < TINY.duration_us
        assert set(np.unique(boxes["t"])) <= set(range(250_000, 1_500_001, 250_000))
        assert set(boxes["class_id"]) <= {0, 1}


def test_events_concentrate_on_the_moving_objects():
    events, boxes = simulate_recording(np.random.default_rng(11), TINY)
    ts = int(np.unique(boxes["t"])[-1])
    window = events[(events["t"] >= ts - 20_000) & (events["t"] < ts)]
    mask = np.zeros((240, 304), bool)
    for b in boxes[boxes["t"] == ts]:  # boxes widened by how far a fast car moves in 20 ms
        x0, x1 = max(int(b["x"]) - 6, 0), min(int(b["x"] + b["w"]) + 6, 304)
        mask[max(int(b["y"]) - 2, 0):min(int(b["y"] + b["h"]) + 2, 240), x0:x1] = True
    inside = mask[window["y"], window["x"]].mean()
    assert mask.mean() < 0.35 and inside > 0.9, (mask.mean(), inside)
    assert 0.3 < window["p"].mean() < 0.7  # leading and trailing edges: both polarities


def test_generation_is_deterministic_and_does_not_overwrite(tmp_path):
    a = generate_recordings(tmp_path / "a", {"test": 1}, TINY, seed=3, progress=False)
    b = generate_recordings(tmp_path / "b", {"test": 1}, TINY, seed=3, progress=False)
    name = "test/synth_3_000"
    assert (a / f"{name}_td.dat").read_bytes() == (b / f"{name}_td.dat").read_bytes()
    assert (a / f"{name}_bbox.npy").read_bytes() == (b / f"{name}_bbox.npy").read_bytes()
    assert generate_recordings(tmp_path / "a", {"test": 1}, TINY, seed=3, progress=False) == a  # reused
    with pytest.raises(FileExistsError, match="not empty"):
        generate_recordings(tmp_path / "a", {"test": 1}, TINY, seed=4, progress=False)


def test_a_run_stopped_halfway_leaves_nothing_and_the_next_one_starts_afresh(tmp_path, monkeypatch):
    """The recordings are written in a hidden sibling and renamed at the end (``events demo`` reruns
    in the same folder after a kill; before, the half-written folder refused it: "not empty")."""
    made = []

    def killed_at_the_second(rng, settings):
        if len(made) == 1:
            raise KeyboardInterrupt  # as a Ctrl-C; a SIGKILL leaves the hidden sibling behind, nothing else
        made.append(1)
        return simulate_recording(rng, settings)

    monkeypatch.setattr(synthetic, "simulate_recording", killed_at_the_second)
    with pytest.raises(KeyboardInterrupt):
        generate_recordings(tmp_path / "raw", {"train": 2, "test": 1}, TINY, progress=False)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    root = generate_recordings(tmp_path / "raw", {"train": 2, "test": 1}, TINY, progress=False)  # no overwrite needed
    assert sorted(p.name for p in root.rglob("*_td.dat")) == ["synth_0_000_td.dat"] * 2 + ["synth_0_001_td.dat"]


@pytest.mark.parametrize(("argv", "error"), [
    (["seconds=-1"], "duration_us must be positive (the recording length: seconds × 10⁶), got -1000000"),
    (["label_hz=0", "objects=-1"], "label_hz must be positive, got 0.0; objects must be 0 or more, got -1"),
    (["train=-2"], "train must be 0 or more recordings, got -2"),
])
def test_synth_command_refuses_bad_settings_before_writing(argv, error, tmp_path, capsys):
    out = tmp_path / "raw"
    assert main(["events", "synth", f"out={out}", *argv]) == 2
    assert capsys.readouterr().err == f"spikeyolo events synth: error: synthetic recordings: {error}\n"
    assert not out.exists()
