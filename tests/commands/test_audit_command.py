"""``spikeyolo audit``: the table, the JSON file and clear errors for bad input."""

import json

from spikeyolo.commands.cli import main


def test_audit_command_writes_json(tmp_path, capsys):
    out = tmp_path / "audit.json"
    assert main(["audit", "model=snn_yolov8n.yaml", "imgsz=64", f"json={out}"]) == 0
    assert "spike-driven share of synaptic operations" in capsys.readouterr().out
    written = json.loads(out.read_text())
    assert written["rows"][0]["layer"] == 1 and written["rows"][0]["kind"] == "MAC"
    assert 0 < written["spike_driven_share_of_synaptic_ops"] <= 1


def test_audit_command_rejects_bad_input(tmp_path, capsys):
    assert main(["audit", f"model={tmp_path / 'missing.pt'}"]) == 2
    assert "missing.pt" in capsys.readouterr().err
    assert main(["audit", "model=snn_yolov8n.yaml", f"source={tmp_path}"]) == 2
    assert "no images" in capsys.readouterr().err
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    assert main(["audit", "model=snn_yolov8n.yaml", "imgsz=64", f"source={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("spikeyolo audit: error: ") and "cannot read 1 image(s)" in err and "broken.jpg" in err
