#!/usr/bin/python3
"""Seeds of pickle_fuzzer: the data.pkl of state dicts that Debian's
python3-torch saves, as the official checkpoints are saved.

  make_pickle_seeds.py OUT_DIR
"""
import collections
import io
import os
import sys
import zipfile

import torch


def data_pkl(obj):
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as archive:
        name = next(n for n in archive.namelist() if n.endswith("/data.pkl"))
        return archive.read(name)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    conv = torch.nn.Conv2d(3, 4, 3)
    bn = torch.nn.BatchNorm2d(4)
    state = collections.OrderedDict(
        [("conv." + k, v) for k, v in conv.state_dict().items()]
        + [("bn." + k, v) for k, v in bn.state_dict().items()])
    seeds = {
        "tiny_state_dict": state,
        "plain_dict": {"conv.weight": torch.zeros(4, 3, 3, 3),
                       "conv.bias": torch.zeros(4)},
        "nested_checkpoint": {"state_dict": {"w": torch.ones(2)}, "epoch": 3,
                              "meta": ("a", 1.5, None, True)},
        "half_and_long": {"h": torch.zeros(3, dtype=torch.half),
                          "l": torch.arange(4)},
        "strided_view": {"t": torch.zeros(4, 6)[:, ::2]},
    }
    for name, obj in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data_pkl(obj))


if __name__ == "__main__":
    main()
