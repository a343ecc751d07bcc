#!/usr/bin/python3
"""Exports a builtin SGCPNet model directory's weights as TorchScript, for
the Python peer (bench/python_peer.py) and segserve's TORCHSCRIPT platform:
the same network, from tests/model/sgcpnet_reference.py (a plain PyTorch
SGCPNet whose state-dict keys are the official ones).

  export_torchscript.py model_repository/scenes-sgcpnet/1/model.pt 6 out.pt
"""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "model"))
from sgcpnet_reference import SgcpNet  # noqa: E402


def main():
    weights, num_classes, output = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    model = SgcpNet(num_classes)
    model.load_state_dict(torch.load(weights), strict=True)
    torch.jit.script(model.eval()).save(output)
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
