"""A PyTorch reference of the CGRSeg decode head (DPG and SSA classifiers)
for the C++ tests.

Written for these tests from the official architecture
(github.com/nizhenliang/CGRSeg cgr_head.py / rcm.py / dpg_head.py and
github.com/xwmaxwma/SSA cgr_head_ssa.py, inference path), independently of
model/cgrseg_head.cc: plain torch.nn, no mmcv/mmseg. The module names are
the official ones, so state_dict() has the `decode_head.` keys of
tests/data/cgrseg_*.keys.txt without that prefix.

  cgrseg_reference.py write OUT_DIR
      For each case of CASES writes OUT_DIR/<case>.pt, a plain dict:
        state.<key>     the randomized head's state dict
        feature.<i>     the four backbone features given to the head (i=0..3)
        reconstruction  the 1/8 reconstruction (results[-1])
        coarse          the shared classifier's coarse logits
        logits          the head's output
      and OUT_DIR/params.txt: "<case> <parameters>" per line.
"""

import math
import os
import sys
from typing import Dict, List

import torch
import torch.nn.functional as F
from torch import Tensor, nn


# ---------------------------------------------------------------- modules --


class RCA(nn.Module):
    """Rectangular self-calibration attention."""

    def __init__(self, dim: int, band: int, square: int):
        super().__init__()
        self.dwconv_hw = nn.Conv2d(dim, dim, square, padding=square // 2,
                                   groups=dim)
        self.excite = nn.Sequential(
            nn.Conv2d(dim, dim, (1, band), padding=(0, band // 2), groups=dim),
            nn.BatchNorm2d(dim),
            nn.ReLU(),
            nn.Conv2d(dim, dim, (band, 1), padding=(band // 2, 0), groups=dim),
            nn.Sigmoid(),
        )

    def forward(self, x: Tensor) -> Tensor:
        # AdaptiveAvgPool2d((None, 1)) and ((1, None)), written as means.
        rows = x.mean(dim=3, keepdim=True)
        cols = x.mean(dim=2, keepdim=True)
        return self.excite(rows + cols) * self.dwconv_hw(x)


class ConvMlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class RCM(nn.Module):
    def __init__(self, dim: int, band: int, square: int = 3, ratio: int = 2):
        super().__init__()
        self.token_mixer = RCA(dim, band, square)
        self.norm = nn.BatchNorm2d(dim)
        self.mlp = ConvMlp(dim, ratio * dim)
        self.gamma = nn.Parameter(1e-6 * torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        y = self.mlp(self.norm(self.token_mixer(x)))
        return x + y * self.gamma.view(1, -1, 1, 1)


class NextLayer(nn.Module):
    def __init__(self, depth: int, dim: int, band: int):
        super().__init__()
        self.transformer_blocks = nn.ModuleList(
            [RCM(dim, band) for _ in range(depth)])

    def forward(self, x: Tensor) -> Tensor:
        for block in self.transformer_blocks:
            x = block(x)
        return x


class ConvModule(nn.Module):
    """mmcv ConvModule: conv (no bias, a norm follows) + bn (+ ReLU)."""

    def __init__(self, cin: int, cout: int, groups: int = 1,
                 relu: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.relu = relu

    def forward(self, x: Tensor) -> Tensor:
        y = self.bn(self.conv(x))
        return F.relu(y) if self.relu else y


class FuseBlockMulti(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.fuse1 = ConvModule(cin, cout)
        self.fuse2 = ConvModule(cin, cout)

    def forward(self, local: Tensor, glob: Tensor) -> Tensor:
        gate = F.relu6(self.fuse2(glob) + 3) / 6
        gate = F.interpolate(gate, size=local.shape[2:], mode="bilinear",
                             align_corners=False)
        return self.fuse1(local) * gate


class DPGHead(nn.Module):
    """pool='att', fusions=['channel_mul']."""

    def __init__(self, dim: int):
        super().__init__()
        self.conv_mask = nn.Conv2d(dim, 1, 1)
        self.channel_mul_conv = nn.Sequential(
            nn.Conv2d(dim, dim, 1),
            nn.LayerNorm([dim, 1, 1]),
            nn.ReLU(),
            nn.Conv2d(dim, dim, 1),
        )

    def forward(self, x: Tensor, protos: Tensor) -> Tensor:
        b, c, k, w = protos.shape
        weights = torch.softmax(self.conv_mask(protos).view(b, 1, k * w), 2)
        context = torch.einsum("bcn,bn->bc", protos.reshape(b, c, k * w),
                               weights[:, 0]).view(b, c, 1, 1)
        return x * torch.sigmoid(self.channel_mul_conv(context))


def spatial_gather(feats: Tensor, logits: Tensor) -> Tensor:
    """OCR's SpatialGatherModule, scale 1: B x C x K x 1."""
    b, k = logits.shape[:2]
    probs = torch.softmax(logits.reshape(b, k, -1), dim=2)
    protos = torch.einsum("bkn,bcn->bkc", probs, feats.flatten(2))
    return protos.permute(0, 2, 1).unsqueeze(3)


def mlp2(dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(2 * dim, dim // 2, bias=False), nn.ReLU(),
                         nn.Linear(dim // 2, dim))


class SetCriterion(nn.Module):
    def __init__(self, num_classes: int):
        super().__init__()
        weight = torch.ones(num_classes + 1)
        weight[-1] = 0.1
        self.register_buffer("empty_weight", weight)


class SSALoss(nn.Module):
    def __init__(self, num_classes: int):
        super().__init__()
        self.criterion = SetCriterion(num_classes)


class CGRSegHead(nn.Module):
    def __init__(self, in_channels: List[int], channels: int, band: int,
                 neck_band: int, depth: int, num_classes: int, ssa: bool):
        super().__init__()
        self.in_channels = in_channels
        self.ssa = ssa
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)
        self.linear_fuse = ConvModule(channels, channels, groups=channels,
                                      relu=True)
        self.trans = NextLayer(depth, sum(in_channels), neck_band)
        self.SIM = nn.ModuleList(
            [FuseBlockMulti(c, channels) for c in in_channels])
        self.meta = nn.ModuleList([RCM(c, band) for c in in_channels])
        self.conv = nn.ModuleList(
            [nn.Conv2d(channels, c, 1) for c in in_channels[:-1]])
        if not ssa:
            self.lgc = DPGHead(channels)
            return
        self.get_feat_pos = nn.Conv2d(channels, channels, 3, 1, 1,
                                      groups=channels)
        self.center_pos = nn.Embedding(num_classes, channels)
        self.center_content_proj = mlp2(channels)
        self.gt_center_content_proj = mlp2(channels)
        self.center_pos_proj = mlp2(channels)
        self.gt_center_pos_proj = mlp2(channels)
        self.center_proj = nn.Linear(channels, channels, bias=False)
        self.gt_center_proj = nn.Linear(channels, channels, bias=False)
        self.ssa_loss = SSALoss(num_classes)

    def reconstruct(self, feats: List[Tensor]) -> Tensor:
        levels = feats[1:]
        h, w = levels[-1].shape[2:]
        size = ((h - 1) // 2 + 1, (w - 1) // 2 + 1)
        pooled = torch.cat([F.adaptive_avg_pool2d(f, size) for f in levels], 1)
        glob = self.trans(pooled).split(self.in_channels, dim=1)
        result = None
        for i in reversed(range(len(levels))):
            local = levels[i]
            if result is not None:
                up = F.interpolate(result, size=local.shape[2:],
                                   mode="bilinear", align_corners=False)
                local = local + self.conv[i](up)
            result = self.SIM[i](self.meta[i](local), glob[i])
        return result

    def ssa_classify(self, coarse: Tensor, feat: Tensor) -> Tensor:
        b, c, h, w = feat.shape
        k = coarse.shape[1]
        proto = self.conv_seg.weight.reshape(k, c)
        feat_pos = self.get_feat_pos(feat)
        flat = coarse.reshape(b, k, h * w)
        # Spatial prototypes: softmax over positions, on the position map.
        where = torch.softmax(flat, dim=2)
        gathered_pos = torch.einsum("bkn,bcn->bkc", where, feat_pos.flatten(2))
        center_pos = self.center_pos_proj(torch.cat(
            [self.center_pos.weight.expand(b, k, c), gathered_pos], -1))
        # Semantic prototypes: softmax over classes, mass-normalized.
        what = torch.softmax(flat, dim=1)
        semantic = torch.einsum("bkn,bcn->bkc", what, feat.flatten(2))
        semantic = semantic / (what.sum(-1, keepdim=True) + 1e-12)
        content = self.center_content_proj(
            torch.cat([semantic, proto.expand(b, k, c)], -1))
        center = self.center_proj(content + center_pos)
        pixels = feat + feat_pos
        pixels = pixels / (pixels.norm(dim=1, keepdim=True) + 1e-12)
        center = center / (center.norm(dim=-1, keepdim=True) + 1e-12)
        return 15 * torch.einsum("bkc,bchw->bkhw", center, pixels)

    def forward(self, feats: List[Tensor]) -> Dict[str, Tensor]:
        x = self.reconstruct(feats)
        fused = self.linear_fuse(x)
        coarse = self.conv_seg(fused)
        if self.ssa:
            logits = self.ssa_classify(coarse, fused)
        else:
            protos = spatial_gather(x, coarse)
            logits = self.conv_seg(self.lgc(x, protos) + x)
        return {"reconstruction": x, "coarse": coarse, "logits": logits}


# ------------------------------------------------------------------ cases --

VARIANTS = {
    # in_channels, channels, band, neck band, depth (official configs).
    "t": ([48, 120, 224], 128, 11, 11, 5),
    "b": ([64, 144, 288], 256, 11, 11, 6),
    "l": ([80, 192, 384], 256, 9, 9, 5),
}
STEM_CHANNELS = {"t": 32, "b": 32, "l": 40}

# name: variant, ssa, batch, input height, input width, classes.
CASES = {
    "t_dpg": ("t", False, 2, 96, 160, 150),
    "t_ssa": ("t", True, 2, 96, 160, 150),
    "b_ssa": ("b", True, 1, 64, 96, 150),
    "l_dpg": ("l", False, 1, 64, 128, 150),
    "t_dpg_512": ("t", False, 1, 512, 512, 150),
}


def randomize(module: nn.Module, gen: torch.Generator) -> None:
    """Seeded values everywhere, so that no default hides a loading bug."""
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if not t.is_floating_point():
                t.fill_(7)
            elif name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=gen) + 0.5)
            elif name.endswith("empty_weight"):
                continue
            elif name.endswith("gamma"):
                t.copy_(torch.rand(t.shape, generator=gen) * 0.5 + 0.5)
            elif t.dim() >= 2 and not name.startswith("center_pos."):
                fan_in = t[0].numel()
                t.copy_(torch.randn(t.shape, generator=gen) /
                        math.sqrt(fan_in))
            elif name.endswith(".weight") and ("bn" in name or "norm" in name
                                               or "excite.1" in name
                                               or "channel_mul_conv.1" in name):
                t.copy_(torch.rand(t.shape, generator=gen) + 0.5)
            else:
                t.copy_(torch.randn(t.shape, generator=gen) * 0.2)


def make_case(name: str, seed: int) -> Dict[str, Tensor]:
    variant, ssa, batch, height, width, classes = CASES[name]
    in_channels, channels, band, neck_band, depth = VARIANTS[variant]
    gen = torch.Generator().manual_seed(seed)
    head = CGRSegHead(in_channels, channels, band, neck_band, depth, classes,
                      ssa)
    randomize(head, gen)
    head.eval()
    widths = [STEM_CHANNELS[variant]] + in_channels
    feats = [torch.randn(batch, c, height // s, width // s, generator=gen)
             for c, s in zip(widths, (4, 8, 16, 32))]
    with torch.no_grad():
        out = head(feats)
    record: Dict[str, Tensor] = {}
    for key, value in head.state_dict().items():
        record["state." + key] = value
    for i, f in enumerate(feats):
        record["feature.%d" % i] = f
    record.update(out)
    return record, sum(p.numel() for p in head.parameters())


def write(out_dir: str) -> None:
    torch.set_num_threads(1)
    os.makedirs(out_dir, exist_ok=True)
    lines = []
    for seed, name in enumerate(sorted(CASES)):
        record, params = make_case(name, 100 + seed)
        torch.save(record, os.path.join(out_dir, name + ".pt"))
        lines.append("%s %d\n" % (name, params))
    with open(os.path.join(out_dir, "params.txt"), "w") as f:
        f.writelines(lines)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "write":
        sys.exit(__doc__)
    write(sys.argv[2])
