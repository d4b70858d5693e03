"""``spikeyolo predict``: detections on images, folders, videos, streams or a webcam, as ``yolo predict``."""

from __future__ import annotations

from pathlib import Path

from ..engine.model import SpikeYOLO
from ..nn.precision import check_precision
from .arguments import UsageError, parse_arguments
from .mode import Mode

USAGE = """usage: {prog} model=best.pt source=... [key=value ...]   (any ultralytics predict key)

  {prog} model=best.pt source=images/        # or image.jpg, video.mp4, rtsp://..., 0 (webcam)
  {prog} model=best.pt source=img.jpg spike_driven=True   # every synapse on binary spikes
  {prog} model=best.pt source=img.jpg amp=bf16            # bfloat16 autocast

Annotated results are saved to runs/detect/predict* (save=True, as yolo predict)."""


def predict(argv: list[str]) -> int:
    """Predict and save annotated results (ultralytics' ``yolo predict`` defaults)."""
    args = parse_arguments(argv, extra_keys={"spike_driven": bool})
    if "model" not in args:
        raise UsageError("give the model: model=path/to/best.pt")
    source = str(args.get("source", ""))
    if not source:
        raise UsageError("give the input: source=image.jpg | folder/ | video.mp4 | 0 (webcam)")
    if not source.isdigit() and "://" not in source and not Path(source).exists():
        raise FileNotFoundError(f"source '{source}' not found")
    if "amp" in args:
        args["amp"] = check_precision(args["amp"])
    model = SpikeYOLO(args.pop("model"))
    try:
        # Under the console script ultralytics sees argv[0] ending in "yolo" and predicts as `yolo
        # predict` does: save=True by default, results streamed rather than kept (webcams, long videos).
        model.predict(**args)
    except ConnectionError:
        raise ConnectionError(f"cannot open source '{source}': no camera at that index, or the stream is unreachable") from None
    return 0


MODE = Mode("predict", "detect objects in images, videos, streams (spike_driven=True, amp=bf16)", USAGE, predict)
