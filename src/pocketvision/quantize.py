"""Full int8 in PyTorch (PT2E), one quantizer for post-training and quantisation-aware training.

The quantizer is litert-torch's PT2EQuantizer: int8 symmetric, weights per output channel,
activations per tensor. The graph it annotates is ``ChannelsLast(mobile_form(model))``, the
NHWC model a .tflite file holds, so:

- post-training (export): :func:`prepare_ptq` inserts observers, calibration images set the
  ranges, :func:`convert` gives the quantised graph litert-torch lowers to an int8 file;
- quantisation-aware training (``pocketvision train --qat RUN``): :func:`prepare_qat` inserts
  fake quantisation into the same graph in training mode; training moves the weights and the
  ranges; :func:`convert` of the trained graph gives the int8 file. What is trained is what
  is shipped: the fake-quantised graph and the .tflite file agree (tests/train/test_qat.py).

The trained QAT graph is saved as its state dict (``checkpoints/qat.safetensors``: weights,
batch-norm statistics, learned scales) and rebuilt by :func:`load_qat`, which prepares the same
graph again and loads it; the graph's tensor names are stable for a given model and input size.

A compatibility shim: torchao's and litert-torch's QAT passes hand plain functions (conv-bn
patterns) to ``torch.export.export``, which since torch 2.9 takes modules only ("Expected
`mod` to be an instance of `torch.nn.Module`, got function"); :func:`_patterns_as_modules`
wraps such a function in a module for the duration of our calls, nothing else changes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import nn

from pocketvision.mobile import INPUT_NAME, ChannelsLast, mobile_form

#: The QAT graph takes batches of any size up to this (torch.export needs a bound).
MAX_BATCH = 4096


class _Pattern(nn.Module):
    def __init__(self, fn: Callable[..., Any]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)


@contextlib.contextmanager
def _patterns_as_modules() -> Iterator[None]:
    """``torch.export.export(function, ...)`` works again inside (see the module docstring)."""
    original = torch.export.export

    def export(mod: Any, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(mod, nn.Module) and callable(mod):
            mod = _Pattern(mod)
        return original(mod, *args, **kwargs)

    torch.export.export = export
    try:
        yield
    finally:
        torch.export.export = original


def quantizer(*, qat: bool = False) -> Any:
    """litert-torch's PT2E quantizer, full int8 (see the module docstring)."""
    from litert_torch.quantize.pt2e_quantizer import (
        PT2EQuantizer,
        get_symmetric_quantization_config,
    )

    config = get_symmetric_quantization_config(is_per_channel=True, is_qat=qat, is_dynamic=False)
    return PT2EQuantizer().set_global(config)


def nhwc_example(input_size: Sequence[int], batch: int = 1) -> torch.Tensor:
    c, h, w = input_size
    return torch.zeros(batch, h, w, c)


def prepare_ptq(model: nn.Module, example: torch.Tensor) -> Any:
    """Observers in the eval-mode NHWC graph of ``model`` (already in mobile form);
    ``example`` is an NHWC batch of one. Feed calibration images, then :func:`convert`."""
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e

    graph = torch.export.export(ChannelsLast(model).eval(), (), {INPUT_NAME: example}).module()
    return prepare_pt2e(graph, quantizer())


def prepare_qat(model: nn.Module, input_size: Sequence[int]) -> Any:
    """The training-mode NHWC graph of ``mobile_form(model)`` with fake quantisation.

    The result is a module taking (N, C, H, W) like every model here and returning logits
    (its ``.graph``, the prepared GraphModule, takes ``image=`` NHWC as the .tflite does);
    ``.train()`` and ``.eval()`` switch batch norm and dropout as on a module.
    """
    from torchao.quantization.pt2e import allow_exported_model_train_eval
    from torchao.quantization.pt2e.quantize_pt2e import prepare_qat_pt2e

    mobile = mobile_form(model, input_size).train()
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    with _patterns_as_modules():
        graph = torch.export.export(
            ChannelsLast(mobile),
            (),
            {INPUT_NAME: nhwc_example(input_size, 2)},
            dynamic_shapes={INPUT_NAME: {0: batch}},
        ).module()
        prepared = prepare_qat_pt2e(graph, quantizer(qat=True))
        allow_exported_model_train_eval(prepared)
    return _Switchable(prepared)


class _Switchable(nn.Module):
    """The prepared graph, whose ``train()`` / ``eval()`` run inside the shim (they rewrite
    batch-norm patterns, which torchao exports as functions)."""

    def __init__(self, graph: nn.Module) -> None:
        super().__init__()
        self.graph = graph

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of an NCHW batch (the graph takes it channels last, as the file does)."""
        return self.graph(**{INPUT_NAME: x.permute(0, 2, 3, 1)})["logits"]

    def train(self, mode: bool = True) -> _Switchable:
        with _patterns_as_modules():
            self.graph.train(mode)
        self.training = mode
        return self


def load_qat(model: nn.Module, input_size: Sequence[int], state: dict[str, torch.Tensor]) -> Any:
    """The QAT graph of ``model`` with a saved state dict (see :func:`qat_state`) loaded."""
    prepared = prepare_qat(model, input_size)
    prepared.graph.load_state_dict(state, strict=True)
    return prepared.eval()


def qat_state(prepared: _Switchable) -> dict[str, torch.Tensor]:
    """What :func:`load_qat` needs: every parameter and buffer of the graph, contiguous."""
    return {k: v.detach().contiguous().clone() for k, v in prepared.graph.state_dict().items()}


def fp32_weights(prepared: _Switchable, model: nn.Module) -> dict[str, torch.Tensor]:
    """``model``'s state dict with the QAT graph's weights (the graph keeps the module's
    names under ``model.``); raises KeyError when a tensor of ``model`` is not in the graph."""
    graph = prepared.graph.state_dict()
    return {k: graph[f"model.{k}"].detach().clone() for k in model.state_dict()}


def convert(prepared: Any) -> Any:
    """The quantised graph (quantize / dequantize around int8 ops) of a prepared graph, in
    eval mode: what litert-torch lowers to a full int8 file."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    graph = prepared.graph if isinstance(prepared, _Switchable) else prepared
    with _patterns_as_modules():
        if isinstance(prepared, _Switchable):
            prepared.eval()
        converted = convert_pt2e(graph, fold_quantize=False)
    converted.training = False  # an exported graph keeps the flag it was exported with
    return converted


def lower_int8(quantized: nn.Module, example: torch.Tensor) -> bytes:
    """The int8 LiteRT flatbuffer of a quantised NHWC graph (:func:`convert`); ``example`` is
    an NHWC batch of one. litert-torch's per-pass progress log is kept off the console."""
    import litert_torch
    from litert_torch import progress
    from litert_torch.quantize.quant_config import QuantConfig

    progress.console.quiet = True
    edge = litert_torch.convert(
        quantized,
        sample_args=(),
        sample_kwargs={INPUT_NAME: example},
        quant_config=QuantConfig(pt2e_quantizer=quantizer()),
    )
    return bytes(edge.model_content())
