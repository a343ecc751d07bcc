#!/usr/bin/python3
"""Interop: a Python grpcio client against the real segserve binary.

A TorchScript module is exported here with Debian's python3-torch, served by
segserve (platform TORCHSCRIPT), and called through stubs generated here with
protoc and grpc_python_plugin. The served masks must equal the module's own
output. Prints 'N passed, N failed' and exits non-zero on any failure.
"""
import argparse
import os
import signal
import subprocess
import sys
import tempfile
import struct
import threading
import zlib

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", ".."))
from tests.segserve_process import (  # noqa: E402
    start_segserve)

HEIGHT, WIDTH, CLASSES = 64, 96, 5
MEAN = [10.0, 20.0, 30.0]
STD = [50.0, 60.0, 70.0]


class TinySegmenter(torch.nn.Module):
    """Stride-2 conv net: logits at half resolution, like a real segmenter."""

    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.conv2 = torch.nn.Conv2d(8, CLASSES, 1)

    def forward(self, x):
        return self.conv2(torch.relu(self.conv1(x)))


def export_model(repo):
    torch.manual_seed(7)
    module = TinySegmenter().eval()
    scripted = torch.jit.script(module)
    os.makedirs(os.path.join(repo, "tiny", "1"))
    scripted.save(os.path.join(repo, "tiny", "1", "model.pt"))
    with open(os.path.join(repo, "tiny", "config.pbtxt"), "w") as f:
        f.write(f"""platform: TORCHSCRIPT
num_classes: {CLASSES}
input {{ height: {HEIGHT} width: {WIDTH} resize: STRETCH
        mean: {MEAN} std: {STD} }}
max_batch_size: 4
dynamic_batching {{ max_queue_delay_us: 1000 }}
""")
    return module


def expected_labels(module, rgb):
    """The module's own answer for an image already at the input size."""
    x = torch.from_numpy(rgb.astype(np.float32)).permute(2, 0, 1)[None]
    x = (x - torch.tensor(MEAN)[None, :, None, None]) / torch.tensor(STD)[
        None, :, None, None]
    with torch.no_grad():
        logits = module(x)
        logits = torch.nn.functional.interpolate(
            logits, size=(HEIGHT, WIDTH), mode="bilinear", align_corners=False)
    return logits.argmax(1)[0].numpy().astype(np.uint8), logits[0]


def encode_png(rgb):
    """A minimal 8-bit RGB PNG writer, so the test needs no image library."""
    height, width, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(height))

    def chunk(kind, data):
        body = kind + data
        return (struct.pack(">I", len(data)) + body +
                struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) +
            chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def generate_stubs(proto_root, out_dir):
    subprocess.run([
        "protoc", f"--proto_path={proto_root}", f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        "--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin",
        os.path.join(proto_root, "segserve/v1/segmentation.proto"),
    ], check=True)
    sys.path.insert(0, out_dir)


def start_server(binary, repo, log_path):
    proc, port, _ = start_segserve(binary, [
        f"--model_repository={repo}", "--default_model=tiny", "--grpc_port=0", "--http_port=-1",
        "--metrics_port=-1", "--host=127.0.0.1", "--intra_op_threads=1",
        "--preprocess_threads=2"], log_path, timeout_s=120)
    return proc, port


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--segserve", required=True)
    parser.add_argument("--proto_root", required=True)
    args = parser.parse_args()

    results = {"passed": 0, "failed": 0}

    def check(name, condition, detail=""):
        if condition:
            results["passed"] += 1
            print(f"[ OK ] {name}")
        else:
            results["failed"] += 1
            print(f"[FAIL] {name} {detail}")

    with tempfile.TemporaryDirectory() as tmp:
        repo = os.path.join(tmp, "repo")
        module = export_model(repo)
        generate_stubs(args.proto_root, tmp)
        import grpc
        from segserve.v1 import segmentation_pb2 as pb
        from segserve.v1 import segmentation_pb2_grpc as pb_grpc

        proc, port = start_server(args.segserve, repo,
                                  os.path.join(tmp, "server.log"))
        try:
            channel = grpc.insecure_channel(f"127.0.0.1:{port}")
            stub = pb_grpc.SegmentationStub(channel)
            rng = np.random.default_rng(3)

            # RAW input at the model's size: labels must equal the module's.
            for trial in range(3):
                rgb = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
                request = pb.SegmentRequest(
                    image=pb.Image(raw=pb.RawImage(
                        width=WIDTH, height=HEIGHT, format=pb.RGB8,
                        data=rgb.tobytes())),
                    mask_encoding=pb.RAW, request_id=f"raw-{trial}")
                response = stub.Segment(request, timeout=30)
                mask = np.frombuffer(response.mask.data, np.uint8).reshape(
                    HEIGHT, WIDTH)
                want, logits = expected_labels(module, rgb)
                # Pixels whose top two logits nearly tie may differ by
                # rounding; every other pixel must match exactly.
                top2 = torch.topk(logits, 2, dim=0).values
                clear = (top2[0] - top2[1] > 1e-3).numpy()
                mismatched = int(((mask != want) & clear).sum())
                check(f"raw trial {trial}: masks equal the module's output",
                      mismatched == 0 and response.request_id == f"raw-{trial}",
                      f"({mismatched} clear pixels differ)")

            # Concurrent requests from threads all get their own answers.
            images = [rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
                      for _ in range(8)]
            answers = [None] * len(images)

            def call(i):
                answers[i] = stub.Segment(pb.SegmentRequest(
                    image=pb.Image(raw=pb.RawImage(
                        width=WIDTH, height=HEIGHT, format=pb.RGB8,
                        data=images[i].tobytes())),
                    mask_encoding=pb.RAW, request_id=str(i)), timeout=60)

            threads = [threading.Thread(target=call, args=(i,))
                       for i in range(len(images))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            ok = True
            for i, response in enumerate(answers):
                want, logits = expected_labels(module, images[i])
                mask = np.frombuffer(response.mask.data, np.uint8).reshape(
                    HEIGHT, WIDTH)
                top2 = torch.topk(logits, 2, dim=0).values
                clear = (top2[0] - top2[1] > 1e-3).numpy()
                ok &= response.request_id == str(i)
                ok &= int(((mask != want) & clear).sum()) == 0
            check("8 concurrent requests each match their own image", ok)

            # An encoded PNG of another size: the mask has the input's size.
            odd = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
            response = stub.Segment(pb.SegmentRequest(
                image=pb.Image(encoded=encode_png(odd))), timeout=30)
            check("PNG input: mask has the input's size",
                  (response.mask.width, response.mask.height) == (53, 37) and
                  response.mask.data[:8] == b"\x89PNG\r\n\x1a\n")

            try:
                stub.Segment(pb.SegmentRequest(
                    image=pb.Image(encoded=b"not an image")), timeout=10)
                check("garbage image refused", False, "no error")
            except grpc.RpcError as error:
                check("garbage image refused with INVALID_ARGUMENT",
                      error.code() == grpc.StatusCode.INVALID_ARGUMENT,
                      str(error.code()))
            models = stub.ListModels(pb.ListModelsRequest(), timeout=10)
            check("ListModels lists the TorchScript model",
                  [m.name for m in models.models] == ["tiny"] and
                  models.models[0].state == pb.READY)
        except Exception as error:  # noqa: BLE001
            check("no unexpected error", False, repr(error))
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=60)
            check("SIGTERM stops the server with exit code 0", code == 0,
                  f"exit code {code}")

    print(f"{results['passed']} passed, {results['failed']} failed")
    return 0 if results["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
