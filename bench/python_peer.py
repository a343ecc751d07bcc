#!/usr/bin/python3
"""The baseline of BENCHMARKS.md: the strongest plain Python segmentation
server a user would write with grpcio and PyTorch (Debian's python3-grpcio
and python3-torch), speaking segserve's proto and serving a TorchScript
model.

What it does, following PyTorch's CPU performance guide:
- concurrent handlers (a grpc thread pool) decode, preprocess, resize the
  labels and encode the mask, each request on its own thread;
- one batching thread runs the model on what the handlers queued, up to
  --max_batch_size per forward pass, without waiting for more
  (--max_queue_delay_ms 0) or up to that long;
- the module frozen with its weights and inputs in channels-last layout
  (--optimize; torch.jit.optimize_for_inference is offered but changes
  this model's outputs at batch sizes above 1 with Debian's PyTorch 1.13),
  torch.inference_mode, intra-op threads set explicitly; the caller sets
  the allocator and OpenBLAS environment (run_bench.py: glibc's malloc
  keeps freed memory, OpenBLAS single-threaded);
- numpy-vectorized RLE and PNG mask encoding.

Per request: RAW RGB8 pixels (or an image file, when Pillow is installed)
-> bilinear resize to the model input when the sizes differ (STRETCH) ->
normalize -> model -> logits resized to the input -> argmax -> labels
resized (nearest) to the image -> mask as PNG, RAW or RLE. Prints
"ready grpc_port=N" when serving.

  python_peer.py --model model.pt --proto_root proto --port 0
"""
import argparse
import io
import os
import queue
import struct
import subprocess
import sys
import tempfile
import time
import warnings
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


def varints(values):
    """LEB128 varints of non-negative integers, vectorized."""
    values = values.astype(np.uint64)
    sizes = np.ones(values.size, np.int64)
    rest = values >> np.uint64(7)
    while rest.any():
        sizes += rest > 0
        rest >>= np.uint64(7)
    starts = np.cumsum(sizes) - sizes
    out = np.empty(int(sizes.sum()), np.uint8)
    for k in range(int(sizes.max(initial=1))):
        has = sizes > k
        byte = (values[has] >> np.uint64(7 * k)) & np.uint64(0x7F)
        more = (sizes[has] > k + 1).astype(np.uint64) << np.uint64(7)
        out[starts[has] + k] = (byte | more).astype(np.uint8)
    return out.tobytes()


def rle(labels):
    """segserve's RLE: (label, run length) pairs as varints, row-major."""
    flat = labels.reshape(-1)
    starts = np.concatenate([[0], np.flatnonzero(np.diff(flat)) + 1])
    lengths = np.diff(np.concatenate([starts, [flat.size]]))
    pairs = np.empty(2 * starts.size, np.int64)
    pairs[0::2] = flat[starts]
    pairs[1::2] = lengths
    return varints(pairs)


def load_model(path, optimize):
    model = torch.jit.load(path).eval()
    channels_last = optimize == "freeze_channels_last"
    if channels_last:
        with torch.no_grad():
            for parameter in model.parameters():
                if parameter.dim() == 4:
                    parameter.data = parameter.data.contiguous(
                        memory_format=torch.channels_last)
    if optimize != "none":
        model = torch.jit.freeze(model)
    if optimize == "optimize_for_inference":
        model = torch.jit.optimize_for_inference(model)
    return model, channels_last


class Batcher:
    """Runs the model on batches of queued requests, on the thread that
    calls run(): the main thread (measured on 2 cores with Debian's PyTorch
    1.13: a batch-1 pass took 15 ms there and 34 ms on a thread of its own,
    with 2 intra-op threads either way)."""

    def __init__(self, model, channels_last, height, width, max_batch,
                 max_delay_s, threads):
        self.model, self.channels_last = model, channels_last
        self.threads = threads
        self.size = (height, width)
        self.max_batch, self.max_delay_s = max_batch, max_delay_s
        self.queue = queue.Queue()

    def infer(self, image):
        """Labels (H x W uint8 numpy) of one preprocessed H x W x 3 float32
        image, and the size of the batch it ran in."""
        future = futures.Future()
        self.queue.put((image, future))
        return future.result()

    def take_batch(self):
        batch = [self.queue.get()]
        deadline = time.perf_counter() + self.max_delay_s
        while len(batch) < self.max_batch:
            timeout = deadline - time.perf_counter()
            try:
                batch.append(self.queue.get(timeout=timeout) if timeout > 0
                             else self.queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def run(self):
        torch.set_num_threads(self.threads)
        while True:
            batch = self.take_batch()
            try:
                with torch.inference_mode():
                    # One copy into the layout the module takes.
                    x = torch.empty(
                        (len(batch), 3, *self.size),
                        memory_format=torch.channels_last
                        if self.channels_last else torch.contiguous_format)
                    for i, (image, _) in enumerate(batch):
                        x[i].copy_(torch.from_numpy(image).permute(2, 0, 1))
                    logits = self.model(x)
                    if logits.shape[2:] != self.size:
                        logits = F.interpolate(logits, size=self.size,
                                               mode="bilinear",
                                               align_corners=False)
                    labels = logits.argmax(1).to(torch.uint8).numpy()
                for i, (_, future) in enumerate(batch):
                    future.set_result((labels[i], len(batch)))
            except Exception as error:  # Every waiting handler hears why.
                for _, future in batch:
                    future.set_exception(error)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True, help="TorchScript file")
    parser.add_argument("--proto_root", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--mean", default="123.675,116.28,103.53")
    parser.add_argument("--std", default="58.395,57.12,57.375")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--workers", type=int, default=32,
                        help="concurrent request handlers")
    parser.add_argument("--max_batch_size", type=int, default=8)
    parser.add_argument("--max_queue_delay_ms", type=float, default=0)
    parser.add_argument("--optimize", default="freeze_channels_last",
                        choices=["none", "freeze", "freeze_channels_last",
                                 "optimize_for_inference"])
    parser.add_argument("--model_name", default="scenes-sgcpnet")
    args = parser.parse_args()

    # torch.from_numpy on the request's read-only bytes: only read.
    warnings.filterwarnings("ignore", "The given NumPy array is not writable")
    generate_stubs(args.proto_root)
    from segserve.v1 import segmentation_pb2 as pb
    from segserve.v1 import segmentation_pb2_grpc as pb_grpc

    torch.set_num_threads(args.threads)
    model, channels_last = load_model(args.model, args.optimize)
    size = (args.height, args.width)
    batcher = Batcher(model, channels_last, args.height, args.width,
                      args.max_batch_size, args.max_queue_delay_ms / 1e3,
                      args.threads)
    with torch.inference_mode():  # Warm-up: profiling runs, allocations.
        for batch in sorted({1, args.max_batch_size}):
            for _ in range(2):
                model(torch.zeros(batch, 3, *size).contiguous(
                    memory_format=torch.channels_last if channels_last
                    else torch.contiguous_format))
    mean = np.array([float(v) for v in args.mean.split(",")], np.float32)
    scale = 1 / np.array([float(v) for v in args.std.split(",")], np.float32)

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
            if (height, width) != size:
                with torch.inference_mode():
                    rgb = F.interpolate(
                        torch.from_numpy(rgb).permute(2, 0, 1)[None].float(),
                        size=size, mode="bilinear", align_corners=False,
                        antialias=True)[0].permute(1, 2, 0).numpy()
            # numpy, not torch: torch ops on a handler thread would start an
            # OpenMP pool per thread, whose spinning workers take the cores
            # from the model's pass.
            x = (rgb.astype(np.float32) - mean) * scale  # H x W x 3.
            preprocessed = time.perf_counter()
            labels, batch_size = batcher.infer(x)
            inferred = time.perf_counter()
            if (height, width) != size:  # Nearest, as F.interpolate.
                rows = np.arange(height) * size[0] // height
                cols = np.arange(width) * size[1] // width
                labels = labels[rows[:, None], cols[None, :]]
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
            response.timing.batch_size = batch_size
            return response

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=args.workers),
                         options=[("grpc.max_receive_message_length", 64 << 20),
                                  ("grpc.max_send_message_length", 64 << 20)])
    pb_grpc.add_SegmentationServicer_to_server(Servicer(), server)
    port = server.add_insecure_port(f"127.0.0.1:{args.port}")
    server.start()
    print(f"ready grpc_port={port}", flush=True)
    batcher.run()


if __name__ == "__main__":
    main()
