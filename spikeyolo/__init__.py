"""spikeyolo: SpikeYOLO spiking object detectors on ultralytics and spikingjelly.

>>> from spikeyolo import SpikeYOLO
>>> model = SpikeYOLO("snn_yolov8n.yaml")
"""

from .utils.offline import configure_offline

configure_offline()  # before ultralytics is imported anywhere below

from .engine.model import SpikeYOLO  # noqa: E402

__version__ = "0.1.0"
__all__ = ["SpikeYOLO", "__version__"]
