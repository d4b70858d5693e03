"""An independent forward pass of the reference SpikeYOLO, written from the spec's formulas (§2-§6).

It reads only a state dict and the reference YAML dict, and records every neuron's integer output
under the module path our models use (``model.2.Conv.lif1`` ...), so the two can be compared
spike for spike. Used only by the parity tests.
"""

from __future__ import annotations


import torch
import torch.nn.functional as F


class ReferenceForward:
    """``forward(images [B,3,H,W] or events [B,T,3,H,W]) -> (decoded [B, 4+nc, A], maps)``.

    Args:
        state: the state dict (``model.<i>.<path>`` keys).
        yaml_dict: the parsed reference model YAML with ``scale`` set.
        gen1: spikingjelly LIF as patched by the reference (leak 0.5, input halved), else COCO I-LIF.
        training: BatchNorm with batch statistics; the border of BN-and-pad still uses the running
            ones, as updated by that batch (the reference reads them right after its BN call).
    """

    def __init__(self, state: dict, yaml_dict: dict, gen1: bool = False, training: bool = False, eps: float = 1e-3):
        self.s, self.d, self.gen1, self.training, self.eps = state, yaml_dict, gen1, training, eps
        self.spikes: dict[str, torch.Tensor] = {}
        self.inputs: dict[str, torch.Tensor] = {}  # each neuron's input current [T, ...]
        self.order: list[str] = []

    # ---- primitives -------------------------------------------------------------------------
    def neuron(self, name: str, x: torch.Tensor) -> torch.Tensor:
        out, v = [], None
        for t in range(x.shape[0]):
            if self.gen1:  # h = v + (x - v) / 2, v_{-1} = 0
                h = x[t] / 2 if v is None else v + (x[t] - v) / 2
            else:  # u_t = 0.25 (u_{t-1} - s_{t-1}) + x_t
                h = x[t] if v is None else 0.25 * v + x[t]
            s = torch.round(torch.clamp(h, 0, 4))
            v = h - s
            out.append(s)
        out = torch.stack(out)
        self.spikes[name], self.inputs[name] = out, x
        self.order.append(name)
        return out

    def bn(self, p: str, x: torch.Tensor) -> torch.Tensor:
        """(x − μ) / sqrt(σ² + eps) · γ + β; μ, σ² of the batch in training. torch's kernel, so that
        float rounding (and hence rounding ties of the next neuron) matches the model exactly."""
        w, b, mean, var = (self.s[f"{p}.{k}"] for k in ("weight", "bias", "running_mean", "running_var"))
        return F.batch_norm(x, mean.clone(), var.clone(), w, b, self.training, 0.0, self.eps)

    def conv(self, p: str, x: torch.Tensor, stride: int = 1, padding: int = 0, groups: int = 1) -> torch.Tensor:
        return F.conv2d(x, self.s[f"{p}.weight"], self.s.get(f"{p}.bias"), stride, padding, 1, groups)

    def bn_pad(self, p: str, x: torch.Tensor, pad: int) -> torch.Tensor:
        y = self.bn(p, x)
        w, b, mean, var = (self.s[f"{p}.{k}"] for k in ("weight", "bias", "running_mean", "running_var"))
        if self.training:  # the border reads the running statistics after this batch's update (momentum 0.03)
            mean = 0.97 * mean + 0.03 * x.mean((0, 2, 3))
            var = 0.97 * var + 0.03 * x.var((0, 2, 3), unbiased=True)
        border = (b - mean * w / torch.sqrt(var + self.eps))[None, :, None, None]
        out = border.expand(y.shape[0], -1, y.shape[2] + 2 * pad, y.shape[3] + 2 * pad).clone()
        out[:, :, pad:-pad, pad:-pad] = y
        return out

    @staticmethod
    def merged(fn, x: torch.Tensor) -> torch.Tensor:
        y = fn(x.flatten(0, 1))
        return y.reshape(x.shape[0], x.shape[1], *y.shape[1:])

    # ---- modules ----------------------------------------------------------------------------
    def std_conv(self, p: str, x, k: int, s: int = 1):  # MS_StandardConv / SpikeConv: N -> conv -> BN
        x = self.neuron(f"{p}.lif", x)
        return self.merged(lambda z: self.bn(f"{p}.bn", self.conv(f"{p}.conv", z, s, k // 2)), x)

    def rep_conv(self, p: str, x):  # 1x1 -> BN-and-pad -> dw3x3 -> 1x1 -> BN
        x = self.conv(f"{p}.body.0", x)
        x = self.bn_pad(f"{p}.body.1.bn", x, 1)
        x = self.conv(f"{p}.body.2.0", x, groups=x.shape[1])
        return self.bn(f"{p}.body.2.2", self.conv(f"{p}.body.2.1", x))

    def sep_conv(self, p: str, x):
        x = self.merged(lambda z: self.bn(f"{p}.bn1", self.conv(f"{p}.pwconv1", z)), self.neuron(f"{p}.lif1", x))
        x = self.merged(lambda z: self.bn(f"{p}.bn2", self.conv(f"{p}.dwconv2", z, 1, 3, z.shape[1])), self.neuron(f"{p}.lif2", x))

        def sep_rep(z):
            z = self.bn_pad(f"{p}.pwconv3.body.0.bn", z, 1)
            z = self.conv(f"{p}.pwconv3.body.1.0", z)
            return self.conv(f"{p}.pwconv3.body.1.1", z, groups=z.shape[1])

        return self.merged(lambda z: self.bn(f"{p}.bn3", sep_rep(z)), self.neuron(f"{p}.lif3", x))

    def conv_block(self, p: str, x):
        x = x + self.sep_conv(f"{p}.Conv", x)
        y = self.merged(lambda z: self.bn(f"{p}.bn1", self.rep_conv(f"{p}.conv1", z)), self.neuron(f"{p}.lif1", x))
        y = self.merged(lambda z: self.bn(f"{p}.bn2", self.rep_conv(f"{p}.conv2", z)), self.neuron(f"{p}.lif2", y))
        return x + y

    def all_conv_block(self, p: str, x):
        x = x + self.sep_conv(f"{p}.Conv", x)
        return x + self.std_conv(f"{p}.conv2", self.std_conv(f"{p}.conv1", x, 3), 3)

    def downsampling(self, p: str, x, k: int, s: int, pad: int, first: bool):
        if not first:
            x = self.neuron(f"{p}.encode_lif", x)
        return self.merged(lambda z: self.bn(f"{p}.encode_bn", self.conv(f"{p}.encode_conv", z, s, pad)), x)

    def sppf(self, p: str, x):
        a = self.std_conv(f"{p}.cv1", x, 1)
        pools = [a]
        for _ in range(3):
            pools.append(self.merged(lambda z: F.max_pool2d(z, 5, 1, 2), pools[-1]))
        return self.std_conv(f"{p}.cv2", torch.cat(pools, 2), 1)

    def head_level(self, p: str, i: int, x):
        out = []
        for branch in ("cv2", "cv3"):
            y = self.std_conv(f"{p}.{branch}.{i}.0", x, 3)
            y = self.std_conv(f"{p}.{branch}.{i}.1", y, 3)
            y = self.merged(lambda z: self.conv(f"{p}.{branch}.{i}.2.conv", z), self.neuron(f"{p}.{branch}.{i}.2.lif", y))
            out.append(y)
        return torch.cat(out, 2).mean(0)

    # ---- network ----------------------------------------------------------------------------
    def forward(self, images: torch.Tensor):
        depth = self.d["scales"][self.d["scale"]][0]
        layers = self.d["backbone"] + self.d["head"]
        ys = []
        x = images
        for i, (f, n, name, args) in enumerate(layers):
            if f != -1:
                x = ys[f] if isinstance(f, int) else [ys[j] if j != -1 else x for j in f]
            n = max(round(n * depth), 1) if n > 1 else n
            p = f"model.{i}"
            if name == "MS_GetT":
                x = x.transpose(0, 1) if x.dim() == 5 else x.unsqueeze(0).repeat(args[1], 1, 1, 1, 1)
            elif name == "MS_DownSampling":
                x = self.downsampling(p, x, *args[1:])
            elif name in ("MS_AllConvBlock", "MS_ConvBlock"):
                block = self.all_conv_block if name == "MS_AllConvBlock" else self.conv_block
                for r in range(n):
                    x = block(f"{p}.{r}" if n > 1 else p, x)
            elif name == "SpikeSPPF":
                x = self.sppf(p, x)
            elif name == "MS_StandardConv":
                x = self.std_conv(p, x, args[1], args[2] if len(args) > 2 else 1)
            elif name == "nn.Upsample":
                x = x.repeat_interleave(2, 3).repeat_interleave(2, 4)
            elif name == "Concat":
                x = torch.cat(x, 2)
            elif name == "SpikeDetect":
                maps = [self.head_level(p, k, xi) for k, xi in enumerate(x)]
                return self.decode(maps), maps
            ys.append(x)
        raise ValueError("no SpikeDetect layer")

    def decode(self, maps: list[torch.Tensor]) -> torch.Tensor:
        """DFL expectation + anchor decoding (xywh, pixels) and class sigmoid: ``[B, 4 + nc, A]``."""
        b = maps[0].shape[0]
        boxes, anchors = [], []
        for m, stride in zip(maps, (8, 16, 32)):
            h, w = m.shape[2:]
            gy, gx = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
            anchors.append(torch.stack((gx, gy), 0).reshape(2, -1) * stride)
            boxes.append(m.reshape(b, m.shape[1], -1))
        boxes, anchors = torch.cat(boxes, 2), torch.cat(anchors, 1)
        strides = torch.cat([torch.full((m.shape[2] * m.shape[3],), float(s)) for m, s in zip(maps, (8, 16, 32))])
        dist = boxes[:, :64].reshape(b, 4, 16, -1).softmax(2).mul(torch.arange(16.0)[None, None, :, None]).sum(2)
        lt, rb = dist[:, :2] * strides, dist[:, 2:] * strides
        xy = anchors[None] + (rb - lt) / 2
        return torch.cat((xy, lt + rb, boxes[:, 64:].sigmoid()), 1)


