#!/usr/bin/python3
"""Sliding-window inference (input resize SLIDE) against an independent
Python implementation of mmsegmentation's slide_inference, on the same
TorchScript model and image.

The model is a small convolutional network with an output stride of 4 and
seeded random weights, scripted here by Debian's python3-torch. The
reference cuts the normalized image into the same grid of crops, runs the
model on each, resizes each crop's logits bilinearly to the crop, sums them
into a full-size tensor with F.pad and divides by the count of crops over
each pixel, as mmsegmentation does. Checked:
  - segslide's blended logits (the server's tiling and blending, in-process)
    within 1e-4 of the reference's largest magnitude;
  - the real server's RAW mask against the reference's argmax (>= 99.99% of
    pixels), its confidence, its class counts and its tile count;
  - concurrent requests whose tiles share batches answer the same masks;
  - an image needing more tiles than the model's queue holds is refused
    INVALID_ARGUMENT with the count, and the server serves afterwards.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import struct
import threading
import zlib

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", ".."))
from tests.segserve_process import SegserveProcess  # noqa: E402

CLASSES = 5
CROP = 64
STRIDE = 40
MEAN = (123.675, 116.28, 103.53)
STD = (58.395, 57.12, 57.375)
failures = []


def check(condition, what):
    print(("ok   " if condition else "FAIL ") + what)
    if not condition:
        failures.append(what)


class TinySegmenter(torch.nn.Module):
    """Logits at a quarter of the input's resolution."""

    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(3, 16, 3, stride=2, padding=1), torch.nn.ReLU(),
            torch.nn.Conv2d(16, 16, 3, stride=2, padding=1), torch.nn.ReLU(),
            torch.nn.Conv2d(16, 16, 3, padding=2, dilation=2), torch.nn.ReLU(),
            torch.nn.Conv2d(16, CLASSES, 1))

    def forward(self, x):
        return self.body(x)


def write_model(root):
    torch.manual_seed(0)
    model = TinySegmenter().eval()
    os.makedirs(os.path.join(root, "slide", "1"))
    torch.jit.script(model).save(os.path.join(root, "slide", "1", "model.pt"))
    with open(os.path.join(root, "slide", "config.pbtxt"), "w") as f:
        f.write(f"""
name: "slide"
platform: TORCHSCRIPT
num_classes: {CLASSES}
input {{
  height: {CROP} width: {CROP} resize: SLIDE
  stride_height: {STRIDE} stride_width: {STRIDE}
  mean: [{", ".join(map(str, MEAN))}] std: [{", ".join(map(str, STD))}]
}}
max_batch_size: 4
dynamic_batching {{ max_queue_delay_us: 2000 max_queue_size: 128 }}
torchscript {{ optimization: NONE }}
""")
    return model


def test_image(width=203, height=150):
    """Smooth colour fields with sharp shapes: logits vary within tiles."""
    rng = np.random.default_rng(7)
    coarse = rng.integers(0, 256, (height // 16 + 2, width // 16 + 2, 3))
    image = torch.nn.functional.interpolate(
        torch.tensor(coarse, dtype=torch.float32).permute(2, 0, 1)[None],
        scale_factor=16, mode="bilinear", align_corners=False)
    image = image[0].permute(1, 2, 0).numpy()[:height, :width]
    y, x = np.mgrid[:height, :width]
    image[(y - 60) ** 2 + (x - 70) ** 2 < 30 ** 2] = (250, 20, 30)
    image[90:140, 120:190] = (10, 240, 60)
    return np.clip(image, 0, 255).astype(np.uint8)  # RGB


def png_bytes(rgb):
    """An 8-bit RGB PNG of `rgb`, unfiltered."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff))
    height, width = rgb.shape[:2]
    rows = b"".join(b"\0" + rgb[y].tobytes() for y in range(height))
    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0,
                                         0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def slide_inference(model, img, crop, stride, num_classes):
    """mmsegmentation's EncoderDecoder.slide_inference, for one image."""
    h_stride, w_stride = stride
    h_crop, w_crop = crop
    _, _, h_img, w_img = img.size()
    h_grids = max(h_img - h_crop + h_stride - 1, 0) // h_stride + 1
    w_grids = max(w_img - w_crop + w_stride - 1, 0) // w_stride + 1
    preds = img.new_zeros((1, num_classes, h_img, w_img))
    count_mat = img.new_zeros((1, 1, h_img, w_img))
    for h_idx in range(h_grids):
        for w_idx in range(w_grids):
            y1 = h_idx * h_stride
            x1 = w_idx * w_stride
            y2 = min(y1 + h_crop, h_img)
            x2 = min(x1 + w_crop, w_img)
            y1 = max(y2 - h_crop, 0)
            x1 = max(x2 - w_crop, 0)
            crop_img = img[:, :, y1:y2, x1:x2]
            crop_logit = F.interpolate(model(crop_img), size=crop_img.shape[2:],
                                       mode="bilinear", align_corners=False)
            preds += F.pad(crop_logit, (int(x1), int(preds.shape[3] - x2),
                                        int(y1), int(preds.shape[2] - y2)))
            count_mat[:, :, y1:y2, x1:x2] += 1
    assert (count_mat == 0).sum() == 0
    return preds / count_mat, h_grids * w_grids


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--segserve", required=True)
    parser.add_argument("--segslide", required=True)
    parser.add_argument("--proto_root", required=True)
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="segserve-slide-")
    subprocess.run([
        "protoc", f"--proto_path={args.proto_root}", f"--python_out={workdir}",
        f"--grpc_python_out={workdir}",
        "--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin",
        os.path.join(args.proto_root, "segserve/v1/segmentation.proto"),
    ], check=True)
    sys.path.insert(0, workdir)
    import grpc
    from segserve.v1 import segmentation_pb2 as v1
    from segserve.v1 import segmentation_pb2_grpc as v1_grpc

    torch.set_num_threads(1)
    repo = os.path.join(workdir, "repo")
    model = write_model(repo)
    rgb = test_image()
    height, width = rgb.shape[:2]
    png_path = os.path.join(workdir, "image.png")
    png = png_bytes(rgb)
    with open(png_path, "wb") as f:
        f.write(png)

    x = torch.from_numpy(rgb.astype(np.float32)).permute(2, 0, 1)[None]
    x = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(
        1, 3, 1, 1)
    with torch.no_grad():
        reference, tiles = slide_inference(model, x, (CROP, CROP),
                                           (STRIDE, STRIDE), CLASSES)
    reference = reference[0].numpy()
    ref_labels = reference.argmax(axis=0)
    check(tiles == 4 * 5, f"the reference cuts {tiles} tiles (4 rows x 5)")

    # The server's tiling and blending, in-process: the logits.
    logits_path = os.path.join(workdir, "logits.f32")
    labels_path = os.path.join(workdir, "labels.raw")
    run = subprocess.run([args.segslide, f"--model_dir={repo}/slide",
                          f"--image={png_path}", f"--logits={logits_path}",
                          f"--labels={labels_path}"],
                         capture_output=True, text=True)
    check(run.returncode == 0, "segslide ran: " + run.stdout.strip()
          + ("" if run.returncode == 0 else run.stderr[-400:]))
    ours = np.fromfile(logits_path, dtype=np.float32).reshape(
        CLASSES, height, width)
    scale = float(np.abs(reference).max())
    error = float(np.abs(ours - reference).max())
    check(error <= 1e-4 * scale,
          f"blended logits within 1e-4 relative of the reference "
          f"(max difference {error:.3g}, largest magnitude {scale:.3g})")
    tool_labels = np.fromfile(labels_path, dtype=np.uint8).reshape(
        height, width)
    check((tool_labels == ref_labels).mean() >= 0.9999,
          f"segslide's labels agree with the reference on "
          f"{100 * (tool_labels == ref_labels).mean():.4f}% of pixels")

    server = SegserveProcess(args.segserve, [
        f"--model_repository={repo}", "--host=127.0.0.1", "--grpc_port=0", "--http_port=-1",
        "--metrics_port=0", "--default_model=slide"],
        os.path.join(workdir, "segserve.log"))
    port, _ = server.wait_ready(timeout_s=120)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=[
        ("grpc.max_receive_message_length", 64 << 20)])
    segment = v1_grpc.SegmentationStub(channel).Segment

    def request(image_bytes=png, confidence=True):
        return v1.SegmentRequest(
            model="slide", image=v1.Image(encoded=image_bytes),
            mask_encoding=v1.RAW,
            include_confidence=confidence)

    try:
        answer = segment(request(), timeout=60)
        mask = np.frombuffer(answer.mask.data, dtype=np.uint8).reshape(
            height, width)
        agreement = (mask == ref_labels).mean()
        check(agreement >= 0.9999,
              f"served labels agree with the reference on "
              f"{100 * agreement:.4f}% of pixels")
        probabilities = torch.softmax(torch.from_numpy(reference), 0)
        ref_confidence = np.round(
            255 * probabilities.max(0).values.numpy()).astype(int)
        confidence = np.frombuffer(answer.mask.confidence,
                                   dtype=np.uint8).astype(int)
        check(confidence.size == width * height and np.abs(
            confidence.reshape(height, width) - ref_confidence).max() <= 1,
              "confidence within 1 of round(255 * softmax of the averaged "
              "logits)")
        check(answer.timing.tiles == tiles,
              f"timing reports {answer.timing.tiles} tiles")
        counts = {s.class_id: s.pixels for s in answer.class_stats}
        expected = {c: int((mask == c).sum()) for c in np.unique(mask)}
        check(counts == expected and sum(counts.values()) == width * height,
              "class stats count the full-resolution mask")

        info = v1_grpc.SegmentationStub(channel).GetModel(
            v1.GetModelRequest(name="slide"), timeout=60)
        check((info.input_resize, info.crop_width, info.crop_height,
               info.stride_width, info.stride_height) ==
              ("SLIDE", CROP, CROP, STRIDE, STRIDE),
              f"GetModel reports the tiling: {info.input_resize} crop "
              f"{info.crop_width}x{info.crop_height} stride "
              f"{info.stride_width}x{info.stride_height}")

        # Tiles of concurrent requests share batches; answers do not mix.
        results = [None] * 6

        def one(i):
            results[i] = segment(request(confidence=False), timeout=60)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        check(all(r is not None and r.mask.data == answer.mask.data
                  for r in results),
              "6 concurrent requests answer the same mask")
        check(max(r.timing.batch_size for r in results) == 4,
              "their tiles ran in full batches of 4")

        # 1000 x 1000 needs 25 x 25 tiles; the queue holds 128 (6 x 20 fit).
        big = png_bytes(np.zeros((1000, 1000, 3), np.uint8))
        try:
            segment(request(big), timeout=60)
            check(False, "an image of 625 tiles is refused")
        except grpc.RpcError as e:
            check(e.code() == grpc.StatusCode.INVALID_ARGUMENT
                  and "needs 625 tiles" in e.details()
                  and "at most 128" in e.details(),
                  f"an image of 625 tiles is refused: {e.details()}")
        again = segment(request(), timeout=60)
        check(again.mask.data == answer.mask.data, "the server serves after")
    finally:
        server.stop()
    if failures:
        print(f"slide test: {len(failures)} failure(s)")
        return 1
    print("slide test: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
