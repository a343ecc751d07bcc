#!/usr/bin/python3
"""The baseline of BENCHMARKS.md: a plain Python segmentation server, as a
user would write one with grpcio and PyTorch (Debian's python3-grpcio and
python3-torch), speaking segserve's proto and serving a TorchScript model.

One request at a time (one worker thread), no batching. Per request: RAW
RGB8 pixels (or an image file, when Pillow is installed) -> bilinear resize
to the model input (STRETCH) -> normalize -> model -> logits resized to the
input -> argmax -> labels resized (nearest) to the image -> mask as PNG, RAW
or RLE. Prints "ready grpc_port=N" when serving.

  python_peer.py --model model.pt --proto_root proto --port 0
"""
import argparse
import io
import os
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from concurrent import futures

import grpc
import numpy as np
import torch
import torch.nn.functional as F


def generate_stubs(proto_root):
    out = tempfile.mkdtemp(prefix="segserve-peer-")
    subprocess.run([
        "protoc", f"--proto_path={proto_root}", f"--python_out={out}",
        f"--grpc_python_out={out}",
        "--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin",
        os.path.join(proto_root, "segserve/v1/segmentation.proto")],
        check=True)
    sys.path.insert(0, out)


def png_gray8(labels):
    height, width = labels.shape
    rows = np.concatenate(
        [np.zeros((height, 1), np.uint8), labels.astype(np.uint8)], axis=1)

    def chunk(kind, data):
        body = kind + data
        return (struct.pack(">I", len(data)) + body +
                struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) +
            chunk(b"IDAT", zlib.compress(rows.tobytes(), 1)) +
            chunk(b"IEND", b""))


def varint(value):
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def rle(labels):
    flat = labels.reshape(-1)
    edges = np.flatnonzero(np.diff(flat)) + 1
    starts = np.concatenate([[0], edges])
    lengths = np.diff(np.concatenate([starts, [flat.size]]))
    return b"".join(varint(int(flat[s])) + varint(int(n))
                    for s, n in zip(starts, lengths))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True, help="TorchScript file")
    parser.add_argument("--proto_root", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--mean", default="123.675,116.28,103.53")
    parser.add_argument("--std", default="58.395,57.12,57.375")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model_name", default="scenes-sgcpnet")
    args = parser.parse_args()

    generate_stubs(args.proto_root)
    from segserve.v1 import segmentation_pb2 as pb
    from segserve.v1 import segmentation_pb2_grpc as pb_grpc

    torch.set_num_threads(args.threads)
    model = torch.jit.load(args.model).eval()
    mean = torch.tensor([float(v) for v in args.mean.split(",")]).view(1, 3, 1, 1)
    std = torch.tensor([float(v) for v in args.std.split(",")]).view(1, 3, 1, 1)

    def decode(image, context):
        if image.WhichOneof("source") == "raw":
            raw = image.raw
            if raw.format != pb.RGB8 or len(raw.data) != raw.width * raw.height * 3:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                              "this peer takes RGB8 raw images of width*height*3 bytes")
            return np.frombuffer(raw.data, np.uint8).reshape(raw.height, raw.width, 3)
        try:
            from PIL import Image
        except ImportError:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          "encoded images need Pillow; send RAW RGB8")
        return np.asarray(Image.open(io.BytesIO(image.encoded)).convert("RGB"))

    class Servicer(pb_grpc.SegmentationServicer):
        def Segment(self, request, context):
            started = time.perf_counter()
            rgb = decode(request.image, context)
            height, width = rgb.shape[:2]
            with torch.inference_mode():
                x = torch.from_numpy(rgb.copy()).permute(2, 0, 1).unsqueeze(0).float()
                x = F.interpolate(x, size=(args.height, args.width), mode="bilinear",
                                  align_corners=False, antialias=True)
                x = (x - mean) / std
                preprocessed = time.perf_counter()
                logits = model(x)
                logits = F.interpolate(logits, size=(args.height, args.width),
                                       mode="bilinear", align_corners=False)
                labels = logits.argmax(1, keepdim=True).float()
                inferred = time.perf_counter()
                labels = F.interpolate(labels, size=(height, width), mode="nearest")
                labels = labels[0, 0].to(torch.uint8).numpy()
            response = pb.SegmentResponse(request_id=request.request_id,
                                          model=args.model_name, model_version="1")
            response.mask.width = width
            response.mask.height = height
            response.mask.encoding = request.mask_encoding
            if request.mask_encoding == pb.RAW:
                response.mask.data = labels.tobytes()
            elif request.mask_encoding == pb.RLE:
                response.mask.data = rle(labels)
            else:
                response.mask.data = png_gray8(labels)
            counts = np.bincount(labels.reshape(-1))
            for class_id in np.flatnonzero(counts):
                response.class_stats.add(class_id=int(class_id),
                                         pixels=int(counts[class_id]))
            done = time.perf_counter()
            response.timing.preprocess_us = int((preprocessed - started) * 1e6)
            response.timing.inference_us = int((inferred - preprocessed) * 1e6)
            response.timing.postprocess_us = int((done - inferred) * 1e6)
            response.timing.batch_size = 1
            return response

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1),
                         options=[("grpc.max_receive_message_length", 64 << 20),
                                  ("grpc.max_send_message_length", 64 << 20)])
    pb_grpc.add_SegmentationServicer_to_server(Servicer(), server)
    port = server.add_insecure_port(f"127.0.0.1:{args.port}")
    server.start()
    print(f"ready grpc_port={port}", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
