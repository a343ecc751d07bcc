"""Python-side fixtures for the model tests, run by the tests themselves with
/usr/bin/python3 (Debian's python3-torch).

  make_fixtures.py write OUT_DIR
      Writes, for one seeded reference SGCPNet (sgcpnet_reference.py):
        ref_state_dict.pt     torch.save(model.state_dict())  (OrderedDict)
        ref_state_dict_p4.pt  torch.save(dict(...), pickle_protocol=4)
        ref_parameters.pt     {name: nn.Parameter or buffer}
        ref_model.ts          torch.jit.script(model)
        ref_tuple.ts          scripted, returns (logits, aux)
        ref_dict.ts           scripted, returns {"aux": ..., "out": logits}
        expected.pt           plain dict: input (2x3x64x96), logits, resized
                              (bilinear to 64x96, align_corners=False),
                              labels (argmax of resized), input_odd
                              (1x3x72x100), logits_odd, pixels (2x64x96x3
                              uint8), pixels_resized and pixels_labels
                              (the same for the pixels normalized)
  make_fixtures.py check FILE KEYS_FILE
      Loads FILE with torch.load, checks its keys, shapes and dtypes against
      KEYS_FILE (in order) and that it loads strictly into the reference
      model. Prints "OK <keys>" and exits 0, or explains and exits 1.
"""

import os
import sys
from typing import Dict, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import sgcpnet_reference as ref

SEED = 1


class TupleOutput(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        return self.model(x), x.mean()


class DictOutput(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Dict[str, Tensor]:
        return {"aux": x.mean(), "out": self.model(x)}


def describe(name: str, tensor: Tensor) -> str:
    return "%s\t%s\t%s" % (name, tuple(tensor.shape),
                           str(tensor.dtype).replace("torch.", ""))


def normalize(pixels: Tensor) -> Tensor:
    """N x H x W x 3 bytes to the N x 3 x H x W floats a served model sees:
    ImageNet mean and std, as pixel * (1 / std) + (-mean / std)."""
    mean = torch.tensor([123.675, 116.28, 103.53])
    std = torch.tensor([58.395, 57.12, 57.375])
    x = pixels.permute(0, 3, 1, 2).float()
    return x * (1 / std).view(1, 3, 1, 1) + (-mean / std).view(1, 3, 1, 1)


def write(out_dir: str) -> None:
    torch.manual_seed(SEED)
    model = ref.SgcpNet(19).eval()
    ref.randomize_(model, SEED)
    state = model.state_dict()
    torch.save(state, os.path.join(out_dir, "ref_state_dict.pt"))
    torch.save(dict(state), os.path.join(out_dir, "ref_state_dict_p4.pt"),
               pickle_protocol=4)
    tensors = dict(model.named_parameters())
    tensors.update(model.named_buffers())
    torch.save(tensors, os.path.join(out_dir, "ref_parameters.pt"))

    scripted = torch.jit.script(model)
    scripted.save(os.path.join(out_dir, "ref_model.ts"))
    torch.jit.script(TupleOutput(model)).save(
        os.path.join(out_dir, "ref_tuple.ts"))
    torch.jit.script(DictOutput(model)).save(
        os.path.join(out_dir, "ref_dict.ts"))

    generator = torch.Generator().manual_seed(SEED)
    x = torch.randn(2, 3, 64, 96, generator=generator)
    x_odd = torch.randn(1, 3, 72, 100, generator=generator)
    pixels = torch.randint(0, 256, (2, 64, 96, 3), generator=generator,
                           dtype=torch.uint8)
    with torch.no_grad():
        logits = scripted(x)
        resized = F.interpolate(logits, size=(64, 96), mode="bilinear",
                                align_corners=False)
        pixels_resized = F.interpolate(
            scripted(normalize(pixels)), size=(64, 96), mode="bilinear",
            align_corners=False)
        expected = {
            "input": x,
            "logits": logits,
            "resized": resized,
            "labels": resized.argmax(dim=1),
            "input_odd": x_odd,
            "logits_odd": model(x_odd),
            "pixels": pixels,
            "pixels_resized": pixels_resized,
            "pixels_labels": pixels_resized.argmax(dim=1),
        }
    torch.save(expected, os.path.join(out_dir, "expected.pt"))


def check(path: str, keys_path: str) -> int:
    state = torch.load(path)
    with open(keys_path) as keys_file:
        expected = keys_file.read().splitlines()
    found = [describe(name, tensor) for name, tensor in state.items()]
    if found != expected:
        missing = sorted(set(expected) - set(found))
        extra = sorted(set(found) - set(expected))
        print("keys differ: missing %s, unexpected %s" % (missing[:5],
                                                           extra[:5]))
        return 1
    model = ref.SgcpNet(19)
    model.load_state_dict(state, strict=True)
    print("OK %d" % len(found))
    return 0


def main(argv) -> int:
    if len(argv) == 3 and argv[1] == "write":
        write(argv[2])
        return 0
    if len(argv) == 4 and argv[1] == "check":
        return check(argv[2], argv[3])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
