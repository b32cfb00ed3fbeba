"""Building blocks shared by the model families."""

from pocketvision.layers.channel_shuffle import ChannelShuffle, channel_shuffle
from pocketvision.layers.classifier import ClassifierHead
from pocketvision.layers.conv_norm_act import conv_norm_act
from pocketvision.layers.make_divisible import make_divisible
from pocketvision.layers.reparameterize import deploy_form, fuse_conv_bn
from pocketvision.layers.squeeze_excite import SqueezeExcite

__all__ = [
    "ChannelShuffle",
    "ClassifierHead",
    "SqueezeExcite",
    "channel_shuffle",
    "conv_norm_act",
    "deploy_form",
    "fuse_conv_bn",
    "make_divisible",
]
