"""Build an ``nn.Sequential`` of SpikeYOLO layers from a model YAML dict."""

from __future__ import annotations

import ast
import inspect

from torch import nn
from ultralytics.utils import LOGGER

from ..cfg import ModelConfigError
from .neuron import ILIF
from .registry import MODULES


def _resolve(name: str, index: int) -> type[nn.Module]:
    if name in MODULES:
        return MODULES[name].cls
    if name.startswith("nn.") and isinstance(getattr(nn, name[3:], None), type):
        return getattr(nn, name[3:])
    known = ", ".join(sorted(MODULES))
    raise ModelConfigError(f"layer {index}: unknown module '{name}'. Known modules: {known}, and torch 'nn.*' layers")


def _literal(value, nc: int):
    if value == "nc":
        return nc
    if isinstance(value, str):
        try:
            return ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return value
    return value


def _check_signature(cls: type[nn.Module], args: list, index: int, name: str) -> None:
    try:
        inspect.signature(cls).bind(*args)
    except TypeError as e:
        raise ModelConfigError(f"layer {index} ({name}): arguments {args} do not fit {name}{inspect.signature(cls)}: {e}") from None


def configure_neurons(model: nn.Module, max_count: int = 4, decay: float = 0.25, input_scale: float = 1.0) -> None:
    """Set the I-LIF parameters (D, leak, input scale) of every neuron in ``model``."""
    for m in model.modules():
        if isinstance(m, ILIF):
            m.max_count, m.decay, m.input_scale = int(max_count), float(decay), float(input_scale)


def _scale_factors(d: dict) -> tuple[float, float, float, dict]:
    scales = d.get("scales")
    overrides = {}
    if scales:
        scale = d.get("scale")
        if not scale:
            scale = next(iter(scales))
            LOGGER.warning(f"no model scale given, assuming scale='{scale}'")
        if scale not in scales:
            raise ModelConfigError(f"scale '{scale}' is not defined; this model has scales {list(scales)}")
        depth, width, max_channels = scales[scale]
        overrides = (d.get("scale_args") or {}).get(scale, {}) or {}
    else:
        depth, width, max_channels = d.get("depth_multiple", 1.0), d.get("width_multiple", 1.0), float("inf")
    return depth, width, max_channels, overrides


def parse_model(d: dict, ch: int = 3, verbose: bool = True) -> tuple[nn.Sequential, list[int]]:
    """Parse a SpikeYOLO model dict into ``(nn.Sequential of layers, sorted save list)``.

    Follows the reference channel rules (spec §5.1) and ultralytics' bookkeeping: each layer gets
    ``i`` (index), ``f`` (from), ``type`` (qualified class name) and ``np`` (parameter count).
    ``scale_args`` (``{scale: {layer_index: args}}``) replaces a layer's arguments for one scale,
    which is how the released m/l models' layer 25 differs from the shipped YAML. ``neuron``
    (``{max_count, decay, input_scale}``) configures every I-LIF.
    """
    nc = d.get("nc")
    if not isinstance(nc, int) or nc < 1:
        raise ModelConfigError(f"model 'nc' must be a positive integer, got {nc!r}")
    depth, width, max_channels, overrides = _scale_factors(d)
    layers_cfg = list(d.get("backbone") or []) + list(d.get("head") or [])
    if verbose:
        LOGGER.info(f"\n{'':>3}{'from':>20}{'n':>3}{'params':>10}  {'module':<45}{'arguments':<30}")
    chs = [ch]
    layers, save = [], []
    for i, row in enumerate(layers_cfg):
        if not isinstance(row, (list, tuple)) or len(row) != 4:
            raise ModelConfigError(f"layer {i}: expected [from, repeats, module, args], got {row!r}")
        f, n, name, args = row
        if not isinstance(name, str):
            raise ModelConfigError(f"layer {i}: module name must be a string, got {name!r}")
        cls = _resolve(name, i)
        args = list(overrides.get(i, args) or [])
        args = [_literal(a, nc) for a in args]
        sources = [f] if isinstance(f, int) else list(f)
        if not sources or any(not isinstance(x, int) or not (x == -1 or -i <= x < 0 or 0 <= x < i) for x in sources):
            raise ModelConfigError(f"layer {i} ({name}): 'from' {f!r} must name earlier layers")
        if not isinstance(n, int) or n < 1:
            raise ModelConfigError(f"layer {i} ({name}): repeats must be a positive integer, got {n!r}")
        n = max(round(n * depth), 1) if n > 1 else n
        c1 = chs[f] if isinstance(f, int) else None
        spec = MODULES.get(name)
        if cls is MODULES["SpikeDetect"].cls:
            args = [args[0] if args else nc, [chs[x] for x in f]]
            c2 = None
        elif cls is MODULES["Concat"].cls:
            c2 = sum(chs[x] for x in f)
        elif spec is not None:
            if spec.rule is not None and not args:
                raise ModelConfigError(f"layer {i} ({name}): needs arguments, got none")
            c2, args = spec.rule(c1, args, width, max_channels)
        else:
            c2 = c1
        _check_signature(cls, args, i, name)
        try:
            m = nn.Sequential(*(cls(*args) for _ in range(n))) if n > 1 else cls(*args)
        except (TypeError, ValueError) as e:
            raise ModelConfigError(f"layer {i} ({name}) could not be built from {args}: {e}") from e
        m.i, m.f, m.type = i, f, f"{cls.__module__}.{cls.__name__}"
        m.np = sum(p.numel() for p in m.parameters())
        if verbose:
            LOGGER.info(f"{i:>3}{str(f):>20}{n:>3}{m.np:10.0f}  {m.type:<45}{str(args):<30}")
        save.extend(x % i for x in sources if x != -1)
        layers.append(m)
        if i == 0:
            chs = []
        chs.append(c2 if c2 is not None else 0)
    if not layers:
        raise ModelConfigError("model has no layers: 'backbone' and 'head' are empty")
    if not isinstance(layers[-1], MODULES["SpikeDetect"].cls):
        raise ModelConfigError(f"the last layer must be SpikeDetect, got {type(layers[-1]).__name__}")
    model = nn.Sequential(*layers)
    configure_neurons(model, **(d.get("neuron") or {}))
    return model, sorted(save)

