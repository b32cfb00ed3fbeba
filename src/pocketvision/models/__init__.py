"""The architecture zoo: importing this package registers every family."""

from pocketvision.models import (
    efficientnet_lite,
    lenet,
    mobilenet_v1,
    mobilenet_v2,
    mobilenet_v3,
    mobilenet_v4,
    mobileone,
    nasnet,
    resnet,
    senet,
    shufflenet_v1,
    squeezenet,
    vgg,
)

__all__ = [
    "efficientnet_lite",
    "lenet",
    "mobilenet_v1",
    "mobilenet_v2",
    "mobilenet_v3",
    "mobilenet_v4",
    "mobileone",
    "nasnet",
    "resnet",
    "senet",
    "shufflenet_v1",
    "squeezenet",
    "vgg",
]
