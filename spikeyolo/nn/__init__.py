"""SpikeYOLO network: I-LIF neuron, spiking blocks, head, YAML parser and detection model.

Every class that can appear in a checkpoint is registered as a torch safe global here, so
checkpoints written by this package load under ``ULTRALYTICS_SAFE_LOAD=1`` (``weights_only``).
The module paths of these classes are the checkpoint format: do not move them.
"""

import torch
from ultralytics.nn.modules.block import DFL
from ultralytics.nn.modules.conv import Concat

from .blocks import MS_AllConvBlock, MS_ConvBlock
from .conv import MS_DownSampling, MS_StandardConv, SpikeConv, SpikeConvWithoutBN
from .head import SpikeDetect
from .model import SpikeDetectionModel
from .neck import ChannelConcat, FrameUpsample
from .neuron import ILIF
from .parse import configure_neurons, parse_model
from .reparam import BNAndPadLayer, RepConv, SepRepConv
from .sepconv import SepConv
from .sppf import SpikeSPPF
from .time_expansion import MS_GetT

CHECKPOINT_CLASSES = (
    ILIF,
    MS_GetT,
    MS_DownSampling,
    MS_StandardConv,
    SpikeConv,
    SpikeConvWithoutBN,
    BNAndPadLayer,
    RepConv,
    SepRepConv,
    SepConv,
    MS_ConvBlock,
    MS_AllConvBlock,
    SpikeSPPF,
    FrameUpsample,
    ChannelConcat,
    SpikeDetect,
    SpikeDetectionModel,
)
# The torch and ultralytics layers inside our models: inert to unpickle (state only), registered so
# that a plain torch.load(weights_only=True) reads our checkpoints after `import spikeyolo`.
LAYER_CLASSES = (
    torch.nn.Conv2d, torch.nn.BatchNorm2d, torch.nn.Sequential, torch.nn.ModuleList, torch.nn.MaxPool2d,
    torch.nn.Upsample, torch.nn.Identity, Concat, DFL,  # Identity: where fusion removed a BatchNorm
)
torch.serialization.add_safe_globals(list(CHECKPOINT_CLASSES + LAYER_CLASSES))

__all__ = [c.__name__ for c in CHECKPOINT_CLASSES] + ["configure_neurons", "parse_model", "CHECKPOINT_CLASSES", "LAYER_CLASSES"]
