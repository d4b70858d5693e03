"""Console summaries shared by the commands."""

from __future__ import annotations


def print_metrics(metrics) -> None:
    """Print mAP50 and mAP50-95 from a ``DetMetrics`` or a trainer's metrics dict."""
    if isinstance(metrics, dict):
        m50, m5095 = metrics.get("metrics/mAP50(B)", 0.0), metrics.get("metrics/mAP50-95(B)", 0.0)
    else:
        m50, m5095 = metrics.box.map50, metrics.box.map
    print(f"mAP50 {m50:.4f}  mAP50-95 {m5095:.4f}")
