"""bfloat16 autocast against exact fp32 on a trained model: mAP, spike counts and speed.

    python bench/precision.py [--model runs/demo/train/weights/best.pt] [--imgsz 96] [--batch 8]

Without ``--model`` it uses the ``make demo`` checkpoint, training it first with the demo recipe
(about 6 minutes on 2 cores) if it is missing. Prints:
- mAP50 and mAP50-95 on the checkpoint's dataset (the bundled synthetic set for the demo) with
  ``amp=fp32`` and ``amp=bf16``, and the change;
- on a fixed batch (the first ``--batch`` validation images): the share of spike counts that
  differ between fp32 and bf16, overall, in the first neuron layer and in the worst layer;
- median ms of that batch in both precisions (fused, no grad).
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import spikeyolo  # noqa: F401  (offline environment before ultralytics)
import torch
from ultralytics.data.utils import check_det_dataset

from spikeyolo import SpikeYOLO
from spikeyolo.analysis.image_rates import list_images, load_letterboxed
from spikeyolo.commands.train import build_train_args
from spikeyolo.nn.neuron import ILIF
from spikeyolo.nn.precision import model_precision
from timing import interleaved_ms

DEMO = Path("runs/demo/train/weights/best.pt")


def demo_checkpoint() -> Path:
    """The ``make demo`` checkpoint, trained with the demo recipe when missing."""
    if not DEMO.is_file():
        args = build_train_args([f"project={DEMO.parents[2].resolve()}", "name=train", "exist_ok=True"])
        SpikeYOLO(args.pop("model")).train(**args)
    return DEMO


def neuron_counts(model: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Each neuron's output counts for ``x``, in call order."""
    seen = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: seen.append(out.float())) for m in model.modules()
             if isinstance(m, ILIF)]
    with torch.inference_mode():
        model(x)
    for h in hooks:
        h.remove()
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--imgsz", type=int, default=None, help="default: the checkpoint's training size")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    path = args.model or demo_checkpoint()
    model = SpikeYOLO(path)
    train_args = model.ckpt.get("train_args", {})
    imgsz = args.imgsz or int(train_args.get("imgsz", 640))
    data = train_args["data"]
    print(f"model {path}, data {data}, imgsz {imgsz}, torch {torch.__version__}, {args.threads} threads")

    maps = {}
    for amp in ("fp32", "bf16"):
        metrics = model.val(data=data, imgsz=imgsz, batch=args.batch, amp=amp, plots=False, verbose=False,
                            project=str(Path("runs/bench").resolve()), name=f"precision-{amp}", exist_ok=True)
        maps[amp] = (metrics.box.map50, metrics.box.map)
    print(f"\n{'':<8}{'mAP50':>8}{'mAP50-95':>10}")
    for amp, (m50, m) in maps.items():
        print(f"{amp:<8}{m50:>8.4f}{m:>10.4f}")
    print(f"{'change':<8}{maps['bf16'][0] - maps['fp32'][0]:>+8.4f}{maps['bf16'][1] - maps['fp32'][1]:>+10.4f}")

    net = model.model.eval()  # fused by the validation above
    val_images = Path(check_det_dataset(data, autodownload=False)["val"])
    x, _ = load_letterboxed(list_images(val_images)[: args.batch], imgsz)
    exact = neuron_counts(net, x)
    with model_precision(net, "bf16"):
        rounded = neuron_counts(net, x)
    changed = [(a != b).float().mean().item() for a, b in zip(exact, rounded)]
    total = sum((a != b).sum().item() for a, b in zip(exact, rounded)) / sum(a.numel() for a in exact)
    worst = max(range(len(changed)), key=changed.__getitem__)
    print(f"\nspike counts changed by bf16 on {len(x)} images: {total:.2%} of {sum(a.numel() for a in exact):,}; "
          f"first neuron layer {changed[0]:.2%}, worst layer (#{worst} of {len(changed)}) {changed[worst]:.2%}")

    def run(amp: str):
        def step():
            with model_precision(net, amp), torch.inference_mode():
                net(x)
        return step

    fp32, bf16 = (statistics.median(t) for t in interleaved_ms([run("fp32"), run("bf16")], args.repeats))
    print(f"batch of {len(x)} at {imgsz}: fp32 {fp32:.1f} ms, bf16 {bf16:.1f} ms ({fp32 / bf16:.2f}x)")


if __name__ == "__main__":
    main()
