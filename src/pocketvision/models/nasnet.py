"""NASNet-A: cells found by architecture search, stacked by hand.

Zoph, Vasudevan, Shlens, Le. "Learning Transferable Architectures for Scalable Image
Recognition". CVPR 2018, arXiv:1707.07012. Reproduces Table 3's NASNet-A (4 @ 1056), the
"mobile" model (its numbers are in its registration at the end of this file).

"N @ P" means N normal cells per stack and P filters in the penultimate layer; a normal cell
concatenates 6 branches of F filters, so F = P / 24 = 44 in the first stack, doubled after each
of the two reduction cells (44, 88, 176; 6 * 176 = 1056). The ImageNet stem (Fig. 2, right):

    conv 3x3/2 'valid', 32 filters, BN (no ReLU)          224 -> 111
    reduction cell, F/4 = 11 filters                      111 -> 56   (4 * 11 = 44 channels)
    reduction cell, F/2 = 22 filters                       56 -> 28   (88 channels)
    4 normal cells (F), reduction (2F), 4 normal (2F), reduction (4F), 4 normal (4F)
    ReLU, global average pool, dropout 0.5, FC           (no auxiliary head at inference)

A cell takes the two previous outputs (h_i, h_{i-1}). h_i passes ReLU -> 1x1 conv -> BN to F
channels. h_{i-1} is made to match: a factorized reduction when it has twice the resolution
(the cell after a reduction), a ReLU -> 1x1 conv -> BN when only its channels differ. Then five
combinations each add two ops on two earlier hidden states; the cell concatenates the hidden
states that Fig. 4 sends to its output (6F in a normal cell, 4F in a reduction cell). In a
reduction cell the ops on the cell's two inputs have stride 2. The wiring below is Fig. 4's,
in the indexing of the reference code (TF-slim ``nasnet_utils.py``): 0 = h_i, 1 = h_{i-1},
2.. = the combinations in order. That the parameter count matches the PyTorch ports
(Cadene's ``pretrainedmodels``, timm) to the unit confirms the wiring.

Where this build differs from the TF-slim reference, and why it does not change the numbers:
stride-2 ops pad symmetrically (k // 2). TF's 'SAME' pads one pixel more at the bottom and
right of even-sized inputs; output sizes, params and MACs are identical, only the sampling
phase moves, which matters for porting TF weights (none exist here). BN uses TF's eps of 1e-3.
Drop-path is not built: the mobile model trains with keep probability 1.0.
"""

from __future__ import annotations

from enum import Enum
from functools import partial
from typing import NamedTuple

import torch
from torch import nn

from pocketvision.layers import ClassifierHead
from pocketvision.registry import Family, Paper, register_model

BatchNorm = partial(nn.BatchNorm2d, eps=1e-3)  # TF-slim's epsilon


class Op(Enum):
    """The operations of Fig. 4 (sep = separable conv applied twice, Appendix A.4)."""

    SEP3 = "separable 3x3"
    SEP5 = "separable 5x5"
    SEP7 = "separable 7x7"
    AVG3 = "average pool 3x3"
    MAX3 = "max pool 3x3"
    IDENTITY = "identity"


class Branch(NamedTuple):
    op: Op
    input: int  # hidden state: 0 = h_i, 1 = h_{i-1}, 2 + b = combination b of this cell


class Combination(NamedTuple):
    left: Branch
    right: Branch  # the combination's output is left + right


class Genotype(NamedTuple):
    combinations: tuple[Combination, ...]
    concat: tuple[int, ...]  # hidden states concatenated into the cell's output
    reduction: bool  # ops on h_i and h_{i-1} have stride 2


def _c(op_l: Op, in_l: int, op_r: Op, in_r: int) -> Combination:
    return Combination(Branch(op_l, in_l), Branch(op_r, in_r))


S3, S5, S7, AVG, MAX, ID = Op.SEP3, Op.SEP5, Op.SEP7, Op.AVG3, Op.MAX3, Op.IDENTITY
SEPARABLE_KERNEL = {Op.SEP3: 3, Op.SEP5: 5, Op.SEP7: 7}

# Zoph et al. 2018, Fig. 4 (left): the NASNet-A normal cell; h_{i-1} joins the output.
NASNET_A_NORMAL = Genotype(
    combinations=(
        _c(S5, 0, S3, 1),
        _c(S5, 1, S3, 1),
        _c(AVG, 0, ID, 1),
        _c(AVG, 1, AVG, 1),
        _c(S3, 0, ID, 0),
    ),
    concat=(1, 2, 3, 4, 5, 6),
    reduction=False,
)

# Zoph et al. 2018, Fig. 4 (right): the NASNet-A reduction cell; combination 0 only feeds
# later combinations, so four of them (4F channels) reach the output.
NASNET_A_REDUCTION = Genotype(
    combinations=(
        _c(S5, 0, S7, 1),
        _c(MAX, 0, S7, 1),
        _c(AVG, 0, S5, 1),
        _c(ID, 3, AVG, 2),
        _c(S3, 2, MAX, 0),
    ),
    concat=(3, 4, 5, 6),
    reduction=True,
)


class SeparableStack(nn.Module):
    """(ReLU, depthwise k x k, pointwise 1x1, BN) twice; only the first is strided.

    Args:
        in_chs: Input channels (the first depthwise conv's channels).
        out_chs: F, the output of both pointwise convs.
        kernel_size: k (3, 5 or 7).
        stride: Stride of the first depthwise conv.
    """

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int, stride: int) -> None:
        super().__init__()
        pad = kernel_size // 2
        layers: list[nn.Module] = []
        for i, (c_in, s) in enumerate(((in_chs, stride), (out_chs, 1))):
            layers += [
                nn.ReLU(inplace=i > 0),  # not in place on the first: h is read by other ops
                nn.Conv2d(c_in, c_in, kernel_size, s, pad, groups=c_in, bias=False),
                nn.Conv2d(c_in, out_chs, 1, bias=False),
                BatchNorm(out_chs),
            ]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def relu_conv_bn(in_chs: int, out_chs: int, stride: int = 1) -> nn.Sequential:
    """ReLU -> 1x1 conv -> BN: how a cell brings a hidden state to F channels."""
    return nn.Sequential(
        nn.ReLU(), nn.Conv2d(in_chs, out_chs, 1, stride, bias=False), BatchNorm(out_chs)
    )


class FactorizedReduction(nn.Module):
    """ReLU, then two 1x1 stride-2 convs of F/2 each, the second shifted by one pixel; BN.

    The first path samples even rows and columns, the second odd ones (zero padding beyond
    the last), so together they see every pixel while halving the resolution: ceil(H / 2).

    Args:
        in_chs: Channels of h_{i-1}.
        out_chs: F (even).
    """

    def __init__(self, in_chs: int, out_chs: int) -> None:
        super().__init__()
        if out_chs % 2:
            raise ValueError(f"factorized reduction needs an even channel count, got {out_chs}")
        self.act = nn.ReLU()
        self.path1 = nn.Conv2d(in_chs, out_chs // 2, 1, stride=2, bias=False)
        self.path2 = nn.Conv2d(in_chs, out_chs // 2, 1, stride=2, bias=False)
        self.shift = nn.ZeroPad2d((0, 1, 0, 1))  # right and bottom, then drop the first row/col
        self.bn = BatchNorm(out_chs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(x)
        shifted = self.shift(x)[:, :, 1:, 1:]  # (N, C, H, W), moved up and left by one pixel
        return self.bn(torch.cat([self.path1(x), self.path2(shifted)], 1))


def make_op(op: Op, in_chs: int, out_chs: int, stride: int) -> nn.Module:
    """One branch: ``op`` at ``stride``, mapping ``in_chs`` to ``out_chs`` channels."""
    if op in SEPARABLE_KERNEL:
        return SeparableStack(in_chs, out_chs, SEPARABLE_KERNEL[op], stride)
    if op is Op.IDENTITY:
        # a strided or channel-changing identity becomes a 1x1 projection (reference code)
        same = stride == 1 and in_chs == out_chs
        return nn.Identity() if same else relu_conv_bn(in_chs, out_chs, stride)
    pool: nn.Module
    if op is Op.AVG3:
        pool = nn.AvgPool2d(3, stride, 1, count_include_pad=False)  # TF 'SAME' averaging
    else:
        pool = nn.MaxPool2d(3, stride, 1)
    if in_chs == out_chs:
        return pool
    return nn.Sequential(pool, nn.Conv2d(in_chs, out_chs, 1, bias=False), BatchNorm(out_chs))


class CombinationBlock(nn.Module):
    """left_op(states[left]) + right_op(states[right])."""

    def __init__(self, spec: Combination, state_chs: list[int], out_chs: int, reduction: bool):
        super().__init__()
        self.left_input, self.right_input = spec.left.input, spec.right.input
        # only ops reading the cell's own inputs (0, 1) are strided in a reduction cell
        strides = [2 if reduction and b.input < 2 else 1 for b in spec]
        self.left = make_op(spec.left.op, state_chs[spec.left.input], out_chs, strides[0])
        self.right = make_op(spec.right.op, state_chs[spec.right.input], out_chs, strides[1])

    def forward(self, states: list[torch.Tensor]) -> torch.Tensor:
        return self.left(states[self.left_input]) + self.right(states[self.right_input])


class Cell(nn.Module):
    """A NASNet cell: adjust both inputs to F channels, run the combinations, concatenate.

    Args:
        genotype: Which ops combine which hidden states (Fig. 4).
        in_chs: Channels of h_i.
        prev_chs: Channels of h_{i-1}, or None for the first stem cell, which has no older
            input and reads h_i unadjusted in its place (the reference code's rule).
        out_chs: F, the filters of every op.
        prev_reduce: h_{i-1} has twice the resolution of h_i (factorized reduction).
    """

    def __init__(
        self, genotype: Genotype, in_chs: int, prev_chs: int | None, out_chs: int, prev_reduce: bool
    ) -> None:
        super().__init__()
        self.conv_1x1 = relu_conv_bn(in_chs, out_chs)
        self.adjust_prev: nn.Module
        if prev_chs is None:
            self.adjust_prev, prev_out = nn.Identity(), in_chs
        elif prev_reduce:
            self.adjust_prev, prev_out = FactorizedReduction(prev_chs, out_chs), out_chs
        elif prev_chs != out_chs:
            self.adjust_prev, prev_out = relu_conv_bn(prev_chs, out_chs), out_chs
        else:
            self.adjust_prev, prev_out = nn.Identity(), out_chs
        state_chs = [out_chs, prev_out] + [out_chs] * len(genotype.combinations)
        self.combinations = nn.ModuleList(
            CombinationBlock(c, state_chs, out_chs, genotype.reduction)
            for c in genotype.combinations
        )
        self.concat = genotype.concat
        self.out_chs = sum(state_chs[i] for i in genotype.concat)

    def forward(self, x: torch.Tensor, x_prev: torch.Tensor) -> torch.Tensor:
        states = [self.conv_1x1(x), self.adjust_prev(x_prev)]  # h_i, h_{i-1}
        for block in self.combinations:
            states.append(block(states))
        return torch.cat([states[i] for i in self.concat], 1)


class NASNet(nn.Module):
    """NASNet-A for ImageNet-sized inputs: stem conv, two stem reduction cells, three stacks.

    Args:
        num_cells: Normal cells per stack (N in "N @ P").
        penultimate_filters: P in "N @ P"; a multiple of 96 so every F is whole and even.
        num_classes: Classifier outputs.
        in_chans: Input channels.
        small_input: The stem conv has stride 1 and padding 1 instead of stride 2 'valid'.
        drop_rate: Dropout before the classifier (the reference keeps 0.5 of activations).
        stem_chs: Filters of the stem conv (32 for the mobile model).
        normal: The normal cell's genotype.
        reduction: The reduction cell's genotype (also used for both stem cells).
    """

    def __init__(
        self,
        num_cells: int = 4,
        penultimate_filters: int = 1056,
        *,
        num_classes: int = 1000,
        in_chans: int = 3,
        small_input: bool = False,
        drop_rate: float = 0.5,
        stem_chs: int = 32,
        normal: Genotype = NASNET_A_NORMAL,
        reduction: Genotype = NASNET_A_REDUCTION,
    ) -> None:
        super().__init__()
        if penultimate_filters % 96 or penultimate_filters <= 0:
            raise ValueError(
                f"penultimate_filters must be a positive multiple of 96 (24 * the stem cells' "
                f"1/4 scaling), got {penultimate_filters}"
            )
        if num_cells < 1:
            raise ValueError(f"num_cells must be >= 1, got {num_cells}")
        filters = penultimate_filters // 24  # F of the first stack (44 for 4 @ 1056)
        stride, pad = (1, 1) if small_input else (2, 0)
        self.stem = nn.Sequential(
            nn.Conv2d(in_chans, stem_chs, 3, stride, pad, bias=False), BatchNorm(stem_chs)
        )
        # (genotype, F, resolution level) of every cell in order; reductions raise the level
        plan = [(reduction, filters // 4, 1), (reduction, filters // 2, 2)]
        for stack in range(3):
            f = filters * 2**stack
            if stack > 0:
                plan.append((reduction, f, 2 + stack))
            plan += [(normal, f, 2 + stack)] * num_cells
        cells: list[Cell] = []
        prev_chs: int | None = None
        in_chs, levels = stem_chs, [0, 0]  # levels of (h_{i-1}, h_i)
        for genotype, f, level in plan:
            cell = Cell(genotype, in_chs, prev_chs, f, prev_reduce=levels[0] < levels[1])
            cells.append(cell)
            prev_chs, in_chs, levels = in_chs, cell.out_chs, [levels[1], level]
        self.cells = nn.ModuleList(cells)
        self.act = nn.ReLU()
        self.num_features = in_chs
        self.head = ClassifierHead(in_chs, num_classes, drop_rate)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x_prev = x  # the first stem cell has no older input and reads the stem output twice
        for cell in self.cells:
            x, x_prev = cell(x, x_prev), x
        return self.act(x)  # (N, 1056, H/32, W/32)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        self.head.reset(num_classes)


NASNET_A = Family(
    name="NASNet",
    model=NASNet,
    paper=Paper(
        "Learning Transferable Architectures for Scalable Image Recognition",
        authors="Zoph, Vasudevan, Shlens, Le",
        year=2018,
        arxiv="1707.07012",
    ),
    small_input=(
        "The stem conv has stride 1 and padding 1 instead of stride 2 'valid'; both stem "
        "reduction cells stay (total stride 16: 28x28 in, 2x2 into the pool; params "
        "unchanged)."
    ),
    first_conv="stem.0",
    classifier="head.fc",
    options=("drop_rate", "num_cells", "penultimate_filters"),
)

register_model(
    NASNET_A,
    "nasnet_a_mobile",
    params=5_289_978,
    macs=564_000_000,
    top1=74.0,
    table="Table 3, NASNet-A (4 @ 1056); cells of Fig. 4",
    note='Table 3 prints "5.3M" params. num_cells and penultimate_filters build other '
    '"N @ P" sizes.',
)
