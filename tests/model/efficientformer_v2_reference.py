"""An independent, functional reference of CGRSeg's EfficientFormerV2 backbone
(nizhenliang/CGRSeg, mmseg/models/backbones/efficientformer_v2.py, eval
mode), and the fixtures the C++ tests compare model/efficientformer_v2.cc
against. Run by the tests with /usr/bin/python3 (Debian's python3-torch).

  efficientformer_v2_reference.py write KEYS_DIR OUT_DIR
      For S1 (cgrseg_t.keys.txt) and L (cgrseg_l.keys.txt) in KEYS_DIR,
      writes a seeded random state dict with the keys, shapes and dtypes of
      the checkpoint's `backbone.` entries (prefix removed):
        s1_state.pt, l_state.pt   plain {name: tensor} dicts
      and expected.pt, a plain dict with, for each case in CASES,
        <case>.input, <case>.feature0 .. <case>.feature3

The reference is written from the equations, not from the official module
structure: weights are looked up by name in the dict, attention uses einsum,
talking heads are head-mixing matrices, and the relative-position index is
the closed form |dy| * side + |dx| (numbering offsets by first appearance,
as the official code does, gives exactly this because the first query row
already meets every offset).
"""

import math
import os
import sys
from typing import Dict, List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

SEED = 7
BN_EPS = 1e-5
BIAS_INPUT = 512  # The input side the attention biases were built for.

# EfficientFormer_width / expansion_ratios_* / vit_num of the official code.
CONFIGS = {
    "s1": dict(widths=(32, 48, 120, 224), vit_num=2,
               ratios=((4, 4, 4), (4, 4, 4), (4, 4, 3, 3, 3, 3, 4, 4, 4),
                       (4, 4, 3, 3, 4, 4))),
    "s2": dict(widths=(32, 64, 144, 288), vit_num=4,
               ratios=((4, 4, 4, 4), (4, 4, 4, 4),
                       (4, 4, 3, 3, 3, 3, 3, 3, 4, 4, 4, 4),
                       (4, 4, 3, 3, 3, 3, 4, 4))),
    "l": dict(widths=(40, 80, 192, 384), vit_num=6,
              ratios=((4, 4, 4, 4, 4), (4, 4, 4, 4, 4),
                      (4, 4, 4, 4, 3, 3, 3, 3, 3, 3, 3, 4, 4, 4, 4),
                      (4, 4, 4, 3, 3, 3, 3, 4, 4, 4))),
}

KEYS_FILES = {"s1": "cgrseg_t.keys.txt", "l": "cgrseg_l.keys.txt"}

# name: (variant, batch, height, width)
CASES = {
    "s1_512": ("s1", 1, 512, 512),
    "s1_256x384": ("s1", 2, 256, 384),
    "s1_32x64": ("s1", 1, 32, 64),
    "l_128x64": ("l", 1, 128, 64),
}

State = Dict[str, Tensor]


def relative_index(query_side: int, key_side: int, step: int) -> Tensor:
    qy, qx = torch.meshgrid(torch.arange(query_side) * step,
                            torch.arange(query_side) * step, indexing="ij")
    ky, kx = torch.meshgrid(torch.arange(key_side), torch.arange(key_side),
                            indexing="ij")
    dy = (qy.reshape(-1, 1) - ky.reshape(1, -1)).abs()
    dx = (qx.reshape(-1, 1) - kx.reshape(1, -1)).abs()
    return dy * key_side + dx


def index_for_shape(shape: Tuple[int, int]) -> Tensor:
    queries, keys = shape
    key_side = math.isqrt(keys)
    query_side = math.isqrt(queries)
    assert key_side * key_side == keys and query_side * query_side == queries
    step = -(-key_side // query_side)
    return relative_index(query_side, key_side, step)


def read_keys(path: str) -> List[Tuple[str, Tuple[int, ...], str]]:
    entries = []
    with open(path) as f:
        for line in f:
            name, shape, dtype = line.rstrip("\n").split("\t")
            if not name.startswith("backbone."):
                continue
            dims = tuple(int(d) for d in shape.strip("()").split(",") if d)
            entries.append((name[len("backbone."):], dims, dtype))
    return entries


def random_state(keys_path: str, seed: int) -> State:
    """Seeded values for every key, chosen so that every branch matters."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape, dtype in read_keys(keys_path):
        leaf = name.rsplit(".", 1)[1]
        if leaf == "attention_bias_idxs_seg":
            value = index_for_shape(shape)
        elif leaf == "attention_bias_idxs":
            value = torch.ones(shape, dtype=torch.int64)
        elif leaf == "num_batches_tracked":
            value = torch.tensor(0, dtype=torch.int64)
        elif leaf == "attention_biases":
            value = torch.zeros(shape)
        elif leaf == "attention_biases_seg":
            value = torch.randn(shape, generator=g)
        elif leaf == "running_var":
            value = torch.rand(shape, generator=g) + 0.5
        elif leaf == "bias" and ".talking_head2." in name:
            # Added to every attention weight, so it scales with the number
            # of positions: kept small to keep features in range.
            value = torch.randn(shape, generator=g) * 0.001
        elif leaf in ("running_mean", "bias"):
            value = torch.randn(shape, generator=g) * 0.1
        elif leaf.startswith("layer_scale"):
            value = torch.rand(shape, generator=g) * 0.4 + 0.1
        elif len(shape) == 4:
            fan_in = shape[1] * shape[2] * shape[3]
            value = torch.randn(shape, generator=g) / math.sqrt(fan_in)
        else:  # BatchNorm weight.
            value = torch.rand(shape, generator=g) + 0.5
        assert str(value.dtype) == "torch." + dtype, name
        state[name] = value
    return state


def conv(x: Tensor, p: State, name: str, stride: int = 1) -> Tensor:
    weight = p[name + ".weight"]
    groups = x.shape[1] // weight.shape[1]
    return F.conv2d(x, weight, p[name + ".bias"], stride,
                    weight.shape[-1] // 2, 1, groups)


def bn(x: Tensor, p: State, name: str) -> Tensor:
    scale = p[name + ".weight"] / torch.sqrt(p[name + ".running_var"] + BN_EPS)
    shift = p[name + ".bias"] - p[name + ".running_mean"] * scale
    return x * scale[None, :, None, None] + shift[None, :, None, None]


def conv_bn(x: Tensor, p: State, conv_name: str, bn_name: str,
            stride: int = 1) -> Tensor:
    return bn(conv(x, p, conv_name, stride), p, bn_name)


def mlp(x: Tensor, p: State, name: str) -> Tensor:
    h = F.gelu(conv_bn(x, p, name + ".fc1", name + ".norm1"))
    h = F.gelu(conv_bn(h, p, name + ".mid", name + ".mid_norm"))
    return conv_bn(h, p, name + ".fc2", name + ".norm2")


def bias(p: State, name: str, query_side: int, key_side: int, step: int,
         queries: int, keys: int) -> Tensor:
    table = p[name + ".attention_biases_seg"]
    index = relative_index(query_side, key_side, step)
    gathered = table[:, index.reshape(-1)].reshape(
        1, table.shape[0], *index.shape)
    return F.interpolate(gathered, size=(queries, keys), mode="bicubic",
                         align_corners=False)


def mix_heads(x: Tensor, p: State, name: str) -> Tensor:
    weight = p[name + ".weight"][:, :, 0, 0]
    return (torch.einsum("oh,bhqk->boqk", weight, x)
            + p[name + ".bias"][None, :, None, None])


def attention4d(x: Tensor, p: State, name: str, stage_side: int,
                strided: bool) -> Tensor:
    heads, key_dim, value_dim = 8, 32, 128
    side = stage_side
    if strided:
        x = conv_bn(x, p, name + ".stride_conv.0", name + ".stride_conv.1", 2)
        side = -(-stage_side // 2)
    b, _, h, w = x.shape
    n = h * w
    q = conv_bn(x, p, name + ".q.0", name + ".q.1").reshape(b, heads,
                                                            key_dim, n)
    k = conv_bn(x, p, name + ".k.0", name + ".k.1").reshape(b, heads,
                                                            key_dim, n)
    v_map = conv_bn(x, p, name + ".v.0", name + ".v.1")
    v_local = conv_bn(v_map, p, name + ".v_local.0", name + ".v_local.1")
    v = v_map.reshape(b, heads, value_dim, n)
    logits = torch.einsum("bhcq,bhck->bhqk", q, k) / math.sqrt(key_dim)
    logits = logits + bias(p, name, side, side, 1, n, n)
    weights = mix_heads(logits, p, name + ".talking_head1").softmax(-1)
    weights = mix_heads(weights, p, name + ".talking_head2")
    out = torch.einsum("bhqk,bhck->bhcq", weights, v).reshape(
        b, heads * value_dim, h, w) + v_local
    if strided:
        out = F.interpolate(out, size=(2 * h, 2 * w), mode="bilinear",
                            align_corners=False)
    return conv_bn(F.gelu(out), p, name + ".proj.1", name + ".proj.2")


def attention_downsample(x: Tensor, p: State, name: str,
                         stage_side: int) -> Tensor:
    heads, key_dim, value_dim = 8, 16, 64
    b, _, h, w = x.shape
    keys, queries = h * w, (h // 2) * (w // 2)
    local = conv(x, p, name + ".q.local.0", 2)
    q = conv_bn(local + x[:, :, ::2, ::2], p, name + ".q.proj.0",
                name + ".q.proj.1").reshape(b, heads, key_dim, queries)
    k = conv_bn(x, p, name + ".k.0", name + ".k.1").reshape(b, heads,
                                                            key_dim, keys)
    v_map = conv_bn(x, p, name + ".v.0", name + ".v.1")
    v_local = conv_bn(v_map, p, name + ".v_local.0", name + ".v_local.1", 2)
    v = v_map.reshape(b, heads, value_dim, keys)
    logits = torch.einsum("bhcq,bhck->bhqk", q, k) / math.sqrt(key_dim)
    query_side = -(-stage_side // 2)
    step = -(-stage_side // query_side)
    logits = logits + bias(p, name, query_side, stage_side, step, queries,
                           keys)
    weights = logits.softmax(-1)
    out = torch.einsum("bhqk,bhck->bhcq", weights, v).reshape(
        b, heads * value_dim, h // 2, w // 2) + v_local
    return conv_bn(F.gelu(out), p, name + ".proj.1", name + ".proj.2")


def backbone(x: Tensor, p: State, variant: str) -> List[Tensor]:
    config = CONFIGS[variant]
    x = F.gelu(conv_bn(x, p, "patch_embed.0", "patch_embed.1", 2))
    x = F.gelu(conv_bn(x, p, "patch_embed.3", "patch_embed.4", 2))
    features = []
    for stage, ratios in enumerate(config["ratios"]):
        stage_side = -(-BIAS_INPUT // 2 ** (stage + 2))
        if stage in (1, 2):
            e = "network.%d" % (2 * stage - 1)
            x = conv_bn(x, p, e + ".proj", e + ".norm", 2)
        elif stage == 3:
            previous_side = -(-BIAS_INPUT // 16)
            x = (attention_downsample(x, p, "network.5.attn", previous_side)
                 + conv_bn(x, p, "network.5.conv", "network.5.bn", 2))
        depth = len(ratios)
        first_attention = depth - config["vit_num"] if stage >= 2 else depth
        for block in range(depth):
            name = "network.%d.%d" % (2 * stage, block)
            if block >= first_attention:
                x = x + p[name + ".layer_scale_1"] * attention4d(
                    x, p, name + ".token_mixer", stage_side, stage == 2)
            x = x + p[name + ".layer_scale_2"] * mlp(x, p, name + ".mlp")
        features.append(x)
    return features


def write(keys_dir: str, out_dir: str) -> None:
    states = {}
    for index, (variant, keys_file) in enumerate(sorted(KEYS_FILES.items())):
        states[variant] = random_state(os.path.join(keys_dir, keys_file),
                                       SEED + index)
        torch.save(states[variant],
                   os.path.join(out_dir, "%s_state.pt" % variant))
    g = torch.Generator().manual_seed(SEED)
    expected = {}
    with torch.no_grad():
        for case, (variant, batch, height, width) in sorted(CASES.items()):
            x = torch.randn(batch, 3, height, width, generator=g)
            expected[case + ".input"] = x
            for i, feature in enumerate(backbone(x, states[variant],
                                                 variant)):
                expected["%s.feature%d" % (case, i)] = feature.contiguous()
    torch.save(expected, os.path.join(out_dir, "expected.pt"))


def main(argv: List[str]) -> int:
    if len(argv) != 4 or argv[1] != "write":
        sys.stderr.write(__doc__)
        return 2
    write(argv[2], argv[3])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
