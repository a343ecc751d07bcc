"""A PyTorch reference of SGCPNet for the C++ tests.

Written independently of model/sgcpnet.cc from the official architecture
(github.com/zhouyuan888888/SGCPNet): same module names, so its state_dict()
has the keys of tests/data/sgcpnet.keys.txt, and the same forward. It is
scriptable, so the tests also export it as TorchScript.
"""

from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def hard_swish(x: Tensor) -> Tensor:
    return x * F.relu6(x + 3.0) / 6.0


class HardSwish(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return hard_swish(x)


class HardSigmoid(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return F.relu6(x + 3.0) / 6.0


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        reduced = channels // 4
        self.se = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, reduced, 1, bias=False),
            nn.BatchNorm2d(reduced),
            nn.ReLU(),
            nn.Conv2d(reduced, channels, 1, bias=False),
            nn.BatchNorm2d(channels),
            HardSigmoid(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x * self.se(x)


class Block(nn.Module):
    def __init__(self, kernel: int, cin: int, cexp: int, cout: int,
                 hswish: bool, se: bool, stride: int):
        super().__init__()
        self.hswish = hswish
        self.stride = stride
        # Registered first, like the official block, for the key order.
        self.se = SqueezeExcite(cout) if se else nn.Identity()
        self.conv1 = nn.Conv2d(cin, cexp, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cexp)
        self.conv2 = nn.Conv2d(cexp, cexp, kernel, stride, kernel // 2,
                               groups=cexp, bias=False)
        self.bn2 = nn.BatchNorm2d(cexp)
        self.conv3 = nn.Conv2d(cexp, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        if stride == 1 and cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False),
                                          nn.BatchNorm2d(cout))
        else:
            self.shortcut = nn.Identity()

    def act(self, x: Tensor) -> Tensor:
        return hard_swish(x) if self.hswish else F.relu(x)

    def forward(self, x: Tensor) -> Tensor:
        y = self.act(self.bn1(self.conv1(x)))
        y = self.act(self.bn2(self.conv2(y)))
        y = self.se(self.bn3(self.conv3(y)))
        if self.stride == 1:
            y = y + self.shortcut(x)
        return y


BLOCKS = [  # kernel, in, expand, out, h-swish, SE, stride
    (3, 16, 16, 16, False, True, 2),
    (3, 16, 72, 24, False, False, 2),
    (3, 24, 88, 24, False, False, 1),
    (5, 24, 96, 40, True, True, 2),
    (5, 40, 240, 40, True, True, 1),
    (5, 40, 240, 40, True, True, 1),
    (5, 40, 120, 48, True, True, 1),
    (5, 48, 144, 48, True, True, 1),
    (5, 48, 288, 96, True, True, 2),
    (5, 96, 576, 96, True, True, 1),
    (5, 96, 576, 96, True, True, 1),
]


class Conv(nn.Module):
    """The BiFPN's conv wrapper (`.conv`), padded by kernel // 2."""

    def __init__(self, cin: int, cout: int, kernel: int, bias: bool = True,
                 groups: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, 1, kernel // 2, bias=bias,
                              groups=groups)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


def bifpn_bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01)


class SeparableConv(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.depthwise_conv = Conv(channels, channels, 3, bias=False,
                                   groups=channels)
        self.pointwise_conv = Conv(channels, channels, 1)
        self.bn = bifpn_bn(channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(self.pointwise_conv(self.depthwise_conv(x)))


def projection(cin: int) -> nn.Sequential:
    return nn.Sequential(Conv(cin, 64, 1), bifpn_bn(64))


def fuse(w: Tensor, xs: List[Tensor]) -> Tensor:
    w = F.relu(w)
    w = w / (torch.sum(w, dim=0) + 1e-4)
    total = w[0] * xs[0]
    for i in range(1, len(xs)):
        total = total + w[i] * xs[i]
    return total * torch.sigmoid(total)


def resize_like(x: Tensor, like: Tensor) -> Tensor:
    return F.interpolate(x, size=(like.shape[2], like.shape[3]),
                         mode="nearest")


def down(x: Tensor) -> Tensor:
    return F.max_pool2d(x, 3, 2, 1)


class FirstBiFpnUnit(nn.Module):
    def __init__(self):
        super().__init__()
        self.p6_w1 = nn.Parameter(torch.ones(2))
        self.p6_w2 = nn.Parameter(torch.ones(3))
        self.p5_w1 = nn.Parameter(torch.ones(2))
        self.p5_w2 = nn.Parameter(torch.ones(3))
        self.p4_w1 = nn.Parameter(torch.ones(2))
        self.p4_w2 = nn.Parameter(torch.ones(3))
        self.p3_w1 = nn.Parameter(torch.ones(2))
        self.p7_w2 = nn.Parameter(torch.ones(2))
        self.p5_down_channel = projection(320)
        self.p4_down_channel = projection(112)
        self.p3_down_channel = projection(40)
        self.p5_to_p6 = nn.Sequential(Conv(320, 64, 1), bifpn_bn(64),
                                      nn.MaxPool2d(3, 2, 1))
        self.p4_down_channel_2 = projection(112)
        self.p5_down_channel_2 = projection(320)
        for name in ["conv6_up", "conv5_up", "conv4_up", "conv3_up",
                     "conv4_down", "conv5_down", "conv6_down", "conv7_down"]:
            self.add_module(name, SeparableConv(64))

    def forward(self, c3: Tensor, c4: Tensor, c5: Tensor
                ) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        p6 = self.p5_to_p6(c5)
        p7 = down(p6)
        p3 = self.p3_down_channel(c3)
        p4 = self.p4_down_channel(c4)
        p5 = self.p5_down_channel(c5)
        p6_up = self.conv6_up(fuse(self.p6_w1, [p6, resize_like(p7, p6)]))
        p5_up = self.conv5_up(fuse(self.p5_w1, [p5, resize_like(p6_up, p5)]))
        p4_up = self.conv4_up(fuse(self.p4_w1, [p4, resize_like(p5_up, p4)]))
        p3_out = self.conv3_up(fuse(self.p3_w1,
                                    [p3, resize_like(p4_up, p3)]))
        p4b = self.p4_down_channel_2(c4)
        p5b = self.p5_down_channel_2(c5)
        p4_out = self.conv4_down(fuse(self.p4_w2, [
            p4b, resize_like(p4_up, p4b), resize_like(down(p3_out), p4b)]))
        p5_out = self.conv5_down(fuse(self.p5_w2, [
            p5b, resize_like(p5_up, p5b), resize_like(down(p4_out), p5b)]))
        p6_out = self.conv6_down(fuse(self.p6_w2, [
            p6, resize_like(p6_up, p6), resize_like(down(p5_out), p6)]))
        p7_out = self.conv7_down(fuse(self.p7_w2, [
            p7, resize_like(down(p6_out), p7)]))
        return p3_out, p4_out, p5_out, p6_out, p7_out


class TopDownBottomUp(nn.Module):
    def __init__(self):
        super().__init__()
        self.unit = nn.ModuleList([FirstBiFpnUnit()])

    def forward(self, c3: Tensor, c4: Tensor, c5: Tensor
                ) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        return self.unit[0](c3, c4, c5)


class TopDown(nn.Module):
    def __init__(self):
        super().__init__()
        self.p6_w1 = nn.Parameter(torch.ones(2))
        self.p5_w1 = nn.Parameter(torch.ones(2))
        self.p4_w1 = nn.Parameter(torch.ones(2))
        self.p3_w1 = nn.Parameter(torch.ones(2))
        self.conv6_up = SeparableConv(64)
        self.conv5_up = SeparableConv(64)
        self.conv4_up = SeparableConv(64)
        self.conv3_up = SeparableConv(64)

    def forward(self, p: Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]
                ) -> Tensor:
        p3, p4, p5, p6, p7 = p
        p6_up = self.conv6_up(fuse(self.p6_w1, [p6, resize_like(p7, p6)]))
        p5_up = self.conv5_up(fuse(self.p5_w1, [p5, resize_like(p6_up, p5)]))
        p4_up = self.conv4_up(fuse(self.p4_w1, [p4, resize_like(p5_up, p4)]))
        return self.conv3_up(fuse(self.p3_w1, [p3, resize_like(p4_up, p3)]))


class Sgcp(nn.Module):
    def __init__(self):
        super().__init__()
        self.td_bu = TopDownBottomUp()
        self.td = TopDown()

    def forward(self, c3: Tensor, c4: Tensor, c5: Tensor) -> Tensor:
        return self.td(self.td_bu(c3, c4, c5))


class SgcpNet(nn.Module):
    def __init__(self, num_classes: int = 19):
        super().__init__()
        blocks = [Block(*config) for config in BLOCKS]
        self.l1 = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False),
                                nn.BatchNorm2d(16), HardSwish())
        self.l2 = blocks[0]
        self.l3 = nn.Sequential(*blocks[1:3])
        self.l4 = nn.Sequential(*blocks[3:8])
        self.l5 = nn.Sequential(*blocks[8:])
        self.conv3 = nn.Conv2d(24, 40, 1)
        self.conv4 = nn.Conv2d(48, 112, 1)
        self.conv5 = nn.Conv2d(96, 320, 1)
        self.sgcp = Sgcp()
        self.classifier = nn.Conv2d(64, num_classes, 1)

    def forward(self, x: Tensor) -> Tensor:
        x3 = self.l3(self.l2(self.l1(x)))
        x4 = self.l4(x3)
        x5 = self.l5(x4)
        p3 = self.sgcp(self.conv3(x3), self.conv4(x4), self.conv5(x5))
        return self.classifier(p3)


def randomize_(model: nn.Module, seed: int) -> None:
    """Fills every parameter and float buffer with seeded random values
    (positive running variances), so that loading bugs cannot hide behind
    default initial values."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not tensor.is_floating_point():
                tensor.fill_(int(torch.randint(0, 1000, (1,),
                                               generator=generator)))
            elif name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator)
                             * 0.5 + 0.75)
            elif name.endswith("running_mean") or name.endswith("bias"):
                tensor.copy_(torch.randn(tensor.shape, generator=generator)
                             * 0.1)
            elif tensor.dim() == 4:  # Conv weights: keep activations O(1).
                fan_in = tensor.shape[1] * tensor.shape[2] * tensor.shape[3]
                tensor.copy_(torch.randn(tensor.shape, generator=generator)
                             * (2.0 / fan_in) ** 0.5)
            else:  # BN scales and fusion weights.
                tensor.copy_(torch.rand(tensor.shape, generator=generator)
                             * 0.5 + 0.75)
