#!/usr/bin/python3
"""Malformed requests, streams and model configs against the real segserve.

Each case names what it sends, the exact status code it must get, and words
its message must hold: what was wrong and what is allowed. Configs are
broken model directories in the test's repository, checked through
GetModel (state UNAVAILABLE and the reason). After every case the server
must still serve a good request. Stubs are generated here with protoc and
grpc_python_plugin, as the interop test does.
"""
import argparse
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

import grpc

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", ".."))
from tests.segserve_process import start_segserve, stop_segserve  # noqa: E402

MODEL = "scenes-sgcpnet"
MAX_PIXELS = 1 << 20
MAX_MESSAGE = 4 << 20
results = {"passed": 0, "failed": 0}


def png(width, height, rgb=b"\x10\x20\x30", declared=None):
    """A minimal 8-bit RGB PNG (its IHDR may declare another size)."""
    raw = b"".join(b"\x00" + rgb * width for _ in range(height))

    def chunk(kind, data):
        body = kind + data
        return (struct.pack(">I", len(data)) + body
                + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF))

    w, h = declared or (width, height)
    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def report(name, ok, detail):
    results["passed" if ok else "failed"] += 1
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else f": {detail}"))


def expect_error(name, call, code, *words):
    try:
        call()
    except grpc.RpcError as e:
        message = e.details() or ""
        missing = [w for w in words if w not in message]
        report(name, e.code() == code and not missing,
               f"got {e.code().name} {message!r}, want {code.name} with "
               f"{missing}")
        return
    report(name, False, f"succeeded, want {code.name}")


BROKEN_CONFIGS = {
    # name: (config.pbtxt, words of the reason)
    "syntax": ("platform: BUILTIN {", ["config.pbtxt"]),
    "enum": ("platform: QUANTUM", ["config.pbtxt", "QUANTUM"]),
    "no-platform": ("num_classes: 3 input { height: 64 width: 64 }",
                    ["platform", "BUILTIN or TORCHSCRIPT"]),
    "architecture": ('platform: BUILTIN architecture: "resnet" num_classes: 3'
                     " input { height: 64 width: 64 }",
                     ["architecture", "sgcpnet"]),
    "no-classes": ('platform: BUILTIN architecture: "sgcpnet"'
                   " input { height: 64 width: 64 }",
                   ["num_classes", "1..65536"]),
    "too-many-classes": ('platform: BUILTIN architecture: "sgcpnet"'
                         " num_classes: 70000 input { height: 64 width: 64 }",
                         ["num_classes", "1..65536"]),
    "class-names": ('platform: BUILTIN architecture: "sgcpnet" num_classes: 3'
                    ' class_names: ["a"] input { height: 64 width: 64 }',
                    ["class_names", "exactly num_classes (3)"]),
    "height": ('platform: BUILTIN architecture: "sgcpnet" num_classes: 3'
               " input { width: 64 }", ["input.height", "1..8192"]),
    "multiple": ('platform: BUILTIN architecture: "cgrseg_t" num_classes: 3'
                 " input { height: 100 width: 64 }",
                 ["input.height", "multiple of"]),
    "mean": ('platform: BUILTIN architecture: "sgcpnet" num_classes: 3'
             " input { height: 64 width: 64 mean: [1, 2] }",
             ["input.mean", "give 3"]),
    "std": ('platform: BUILTIN architecture: "sgcpnet" num_classes: 3'
            " input { height: 64 width: 64 std: [1, 0, 1] }",
            ["input.std", "positive"]),
    "preferred": ('platform: BUILTIN architecture: "sgcpnet" num_classes: 3'
                  " input { height: 64 width: 64 } max_batch_size: 4"
                  " dynamic_batching { preferred_batch_size: 8 }",
                  ["preferred_batch_size", "1..max_batch_size (4)"]),
    "gpus-on-cpu": ('platform: BUILTIN architecture: "sgcpnet" num_classes: 3'
                    " input { height: 64 width: 64 }"
                    " instance_group { kind: CPU gpus: 0 }",
                    ["instance_group.gpus"]),
    "gpu": ('platform: BUILTIN architecture: "sgcpnet" num_classes: 3'
            " input { height: 64 width: 64 } instance_group { kind: GPU }",
            ["GPU", "no CUDA device"]),
    "fp16": ('platform: BUILTIN architecture: "sgcpnet" num_classes: 3'
             " input { height: 64 width: 64 } precision: FP16"
             " instance_group { kind: CPU }", ["precision", "GPU"]),
    "ssa": ('platform: BUILTIN architecture: "sgcpnet" num_classes: 3'
            " input { height: 64 width: 64 } classifier: SSA",
            ["classifier", "cgrseg"]),
    "wrong-name": ('name: "other" platform: BUILTIN architecture: "sgcpnet"'
                   " num_classes: 3 input { height: 64 width: 64 }",
                   ["'name'", "directory name"]),
}
GOOD_SMALL = ('platform: BUILTIN architecture: "sgcpnet" num_classes: 3'
              " input { height: 64 width: 64 }")


def make_repository(source, root, outside):
    shutil.copytree(os.path.join(source, MODEL), os.path.join(root, MODEL))
    for name, (config, _) in BROKEN_CONFIGS.items():
        os.makedirs(os.path.join(root, name, "1"))
        with open(os.path.join(root, name, "config.pbtxt"), "w") as f:
            f.write(config)
        with open(os.path.join(root, name, "1", "model.pt"), "wb") as f:
            f.write(b"")
    for name, weights in (("empty-weights", b""),
                          ("garbage-weights", b"not a zip file at all")):
        os.makedirs(os.path.join(root, name, "1"))
        with open(os.path.join(root, name, "config.pbtxt"), "w") as f:
            f.write(GOOD_SMALL)
        with open(os.path.join(root, name, "1", "model.pt"), "wb") as f:
            f.write(weights)
    os.makedirs(os.path.join(root, "no-version"))
    with open(os.path.join(root, "no-version", "config.pbtxt"), "w") as f:
        f.write(GOOD_SMALL)
    os.makedirs(os.path.join(root, "no-config", "1"))
    os.makedirs(os.path.join(outside, "escaped", "1"))
    with open(os.path.join(outside, "escaped", "config.pbtxt"), "w") as f:
        f.write(GOOD_SMALL)
    os.symlink(os.path.join(outside, "escaped"), os.path.join(root, "escaped"))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--segserve", required=True)
    parser.add_argument("--proto_root", required=True)
    parser.add_argument("--model_repository", required=True)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="segserve-bad-input-")
    subprocess.run([
        "protoc", f"--proto_path={args.proto_root}", f"--python_out={tmp}",
        f"--grpc_python_out={tmp}",
        "--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin",
        os.path.join(args.proto_root, "segserve/v1/segmentation.proto")],
        check=True)
    sys.path.insert(0, tmp)
    from segserve.v1 import segmentation_pb2 as pb  # noqa: E402
    from segserve.v1 import segmentation_pb2_grpc as pb_grpc  # noqa: E402

    repo = os.path.join(tmp, "repo")
    os.makedirs(repo)
    outside = os.path.join(tmp, "outside")
    make_repository(args.model_repository, repo, outside)
    server, port, _ = start_segserve(args.segserve, [
        f"--model_repository={repo}", f"--default_model={MODEL}",
        "--host=127.0.0.1", "--grpc_port=0", "--http_port=-1", "--metrics_port=-1",
        "--cpu_cores=1", f"--max_image_pixels={MAX_PIXELS}",
        f"--max_message_bytes={MAX_MESSAGE}"],
        os.path.join(tmp, "server.log"))
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = pb_grpc.SegmentationStub(channel)
    Code = grpc.StatusCode

    def segment(**fields):
        return lambda: stub.Segment(pb.SegmentRequest(**fields), timeout=30)

    def raw(width, height, fmt, data):
        return pb.Image(raw=pb.RawImage(width=width, height=height,
                                        format=fmt, data=data))

    def still_serves(after):
        # Oversized metadata makes gRPC close that client's connection: a
        # call racing the close fails UNAVAILABLE, and the next one, on a
        # new connection, must be served.
        for attempt in range(2):
            try:
                response = stub.Segment(pb.SegmentRequest(
                    image=pb.Image(encoded=png(8, 6))), timeout=30,
                    wait_for_ready=True)
                ok = response.mask.width == 8 and response.mask.height == 6
                break
            except grpc.RpcError as e:
                ok, response = False, e
                if e.code() != grpc.StatusCode.UNAVAILABLE:
                    break
        if not ok:
            report(f"serves after {after}", False, str(response))

    good = pb.Image(encoded=png(8, 6))
    cases = [
        ("no image", segment(), Code.INVALID_ARGUMENT,
         "no image", "image.encoded", "image.raw"),
        ("empty encoded image", segment(image=pb.Image(encoded=b"")),
         Code.INVALID_ARGUMENT, "image.encoded is empty", "JPEG, PNG"),
        ("text as an image", segment(image=pb.Image(encoded=b"hello")),
         Code.INVALID_ARGUMENT, "JPEG", "PNG"),
        ("GIF", segment(image=pb.Image(encoded=b"GIF89a" + b"\0" * 20)),
         Code.INVALID_ARGUMENT, "JPEG", "PNG"),
        ("truncated PNG", segment(image=pb.Image(encoded=png(8, 6)[:30])),
         Code.INVALID_ARGUMENT, "PNG"),
        ("PNG bomb header", segment(image=pb.Image(
            encoded=png(8, 6, declared=(20000, 20000)))),
         Code.INVALID_ARGUMENT, "pixel", str(MAX_PIXELS)),
        ("truncated JPEG", segment(image=pb.Image(encoded=b"\xff\xd8\xff\xe0")),
         Code.INVALID_ARGUMENT, "JPEG"),
        ("truncated BMP", segment(image=pb.Image(encoded=b"BM\x00\x00")),
         Code.INVALID_ARGUMENT, "BMP"),
        ("truncated WebP", segment(image=pb.Image(
            encoded=b"RIFF\x10\x00\x00\x00WEBPVP8 ")),
         Code.INVALID_ARGUMENT, "WebP"),
        ("truncated TIFF", segment(image=pb.Image(encoded=b"II*\x00\x08")),
         Code.INVALID_ARGUMENT, "TIFF"),
        ("raw width 0", segment(image=raw(0, 4, pb.RGB8, b"")),
         Code.INVALID_ARGUMENT, "image.raw is 0x4", "1..65536"),
        ("raw height 0", segment(image=raw(4, 0, pb.RGB8, b"")),
         Code.INVALID_ARGUMENT, "image.raw is 4x0"),
        ("raw side over 65536", segment(image=raw(70000, 1, pb.RGB8, b"")),
         Code.INVALID_ARGUMENT, "1..65536"),
        ("raw format unspecified", segment(image=raw(
            2, 2, pb.PIXEL_FORMAT_UNSPECIFIED, b"\0" * 12)),
         Code.INVALID_ARGUMENT, "image.raw.format", "RGB8, BGR8, GRAY8"),
        ("raw format 99", segment(image=raw(2, 2, 99, b"\0" * 12)),
         Code.INVALID_ARGUMENT, "99", "RGB8, BGR8, GRAY8"),
        ("raw RGB8 data short", segment(image=raw(4, 4, pb.RGB8, b"\0" * 10)),
         Code.INVALID_ARGUMENT, "48"),
        ("raw RGB8 data long", segment(image=raw(2, 2, pb.RGB8, b"\0" * 13)),
         Code.INVALID_ARGUMENT, "12"),
        ("raw GRAY8 of RGB size", segment(image=raw(2, 2, pb.GRAY8,
                                                    b"\0" * 12)),
         Code.INVALID_ARGUMENT, "4"),
        ("raw over the pixel limit", segment(image=raw(
            1100, 1000, pb.GRAY8, b"\0" * (1100 * 1000))),
         Code.INVALID_ARGUMENT, "pixel"),
        ("mask encoding 9", segment(image=good, mask_encoding=9),
         Code.INVALID_ARGUMENT, "mask_encoding 9", "PNG, RAW, RLE"),
        ("mask encoding -1", segment(image=good, mask_encoding=-1),
         Code.INVALID_ARGUMENT, "mask_encoding -1", "PNG, RAW, RLE"),
        ("priority out of range", segment(image=good, priority=5),
         Code.INVALID_ARGUMENT, "priority 5", "0..1 are allowed"),
        ("unknown model", segment(image=good, model="nope"),
         Code.NOT_FOUND, "unknown model 'nope'", MODEL),
        ("10,000-byte model name", segment(image=good, model="m" * 10000),
         Code.NOT_FOUND, "(10000 bytes)"),
        ("model name with ..", segment(image=good, model="../" + MODEL),
         Code.NOT_FOUND, "unknown model"),
        ("absolute model path", segment(image=good, model="/etc/passwd"),
         Code.NOT_FOUND, "unknown model"),
        ("model name with NUL", segment(image=good, model=MODEL + "\0x"),
         Code.NOT_FOUND, "\\x00"),
        ("version not a number", segment(image=good, model_version="abc"),
         Code.INVALID_ARGUMENT, "'abc' is not a version number",
         "positive integer"),
        ("version 0", segment(image=good, model_version="0"),
         Code.INVALID_ARGUMENT, "not a version number"),
        ("version -1", segment(image=good, model_version="-1"),
         Code.INVALID_ARGUMENT, "not a version number"),
        ("version 1.5", segment(image=good, model_version="1.5"),
         Code.INVALID_ARGUMENT, "not a version number"),
        ("unknown version", segment(image=good, model_version="999"),
         Code.NOT_FOUND, "has no version 999", "versions: 1"),
        ("model that failed to load", segment(image=good, model="architecture"),
         Code.UNAVAILABLE, "is not ready", "sgcpnet"),
        ("message over the limit", segment(image=pb.Image(
            encoded=b"\0" * (MAX_MESSAGE + 1))),
         Code.RESOURCE_EXHAUSTED, ""),
        ("GetModel of an unknown model",
         lambda: stub.GetModel(pb.GetModelRequest(name="nope"), timeout=30),
         Code.NOT_FOUND, "unknown model 'nope'"),
        ("GetModel of a bad version",
         lambda: stub.GetModel(pb.GetModelRequest(name=MODEL, version="x"),
                               timeout=30),
         Code.INVALID_ARGUMENT, "not a version number"),
        ("GetModel of an unknown version",
         lambda: stub.GetModel(pb.GetModelRequest(name=MODEL, version="7"),
                               timeout=30),
         Code.NOT_FOUND, "has no version 7"),
        ("request metadata over the limit",
         lambda: stub.Segment(pb.SegmentRequest(image=good), timeout=30,
                              metadata=[("x-big", "v" * 40000)]),
         Code.RESOURCE_EXHAUSTED, ""),
        # gRPC 1.51's callback server answers a message it cannot parse
        # itself, before segserve sees it, and says UNIMPLEMENTED with no
        # message (RELIABILITY.md).
        ("unparsable request bytes",
         lambda: channel.unary_unary(
             "/segserve.v1.Segmentation/Segment")(b"\xff\xff\xff", timeout=30),
         Code.UNIMPLEMENTED, ""),
        ("unknown method",
         lambda: channel.unary_unary("/segserve.v1.Segmentation/Nope")(
             b"", timeout=30),
         Code.UNIMPLEMENTED, ""),
        ("health of an unknown service",
         lambda: channel.unary_unary("/grpc.health.v1.Health/Check")(
             b"\x0a\x04nope", timeout=30),
         Code.NOT_FOUND, ""),
    ]

    def stream(frames):
        return lambda: list(stub.SegmentStream(iter(frames), timeout=30))

    frame = pb.SegmentRequest(image=good)
    cases += [
        ("stream: second frame has no image",
         stream([frame, pb.SegmentRequest()]), Code.INVALID_ARGUMENT,
         "no image"),
        ("stream: unknown model", stream([pb.SegmentRequest(
            image=good, model="nope")]), Code.NOT_FOUND, "unknown model"),
        ("stream: bad mask encoding", stream([pb.SegmentRequest(
            image=good, mask_encoding=7)]), Code.INVALID_ARGUMENT,
         "PNG, RAW, RLE"),
        ("stream: priority out of range", stream([frame, pb.SegmentRequest(
            image=good, priority=3)]), Code.INVALID_ARGUMENT, "priority 3"),
        ("stream: broken raw frame", stream([pb.SegmentRequest(
            image=raw(3, 3, pb.RGB8, b"\0"))]), Code.INVALID_ARGUMENT, "27"),
        ("stream: GIF frame", stream([pb.SegmentRequest(
            image=pb.Image(encoded=b"GIF89a" + b"\0" * 20))]),
         Code.INVALID_ARGUMENT, "PNG"),
    ]
    try:
        for name, call, code, *words in cases:
            expect_error(name, call, code, *[w for w in words if w])
            still_serves(name)

        # Model configs and files: each broken model is UNAVAILABLE with why.
        unavailable = pb.ModelState.Value("UNAVAILABLE")
        broken = {name: words for name, (_, words) in BROKEN_CONFIGS.items()}
        broken.update({
            "empty-weights": ["model.pt"],
            "garbage-weights": ["model.pt"],
            "no-version": ["no version directory"],
            "no-config": ["config.pbtxt"],
            "escaped": ["outside the model repository"],
        })
        for name, words in broken.items():
            info = stub.GetModel(pb.GetModelRequest(name=name), timeout=30)
            reason = info.reason + " ".join(v.reason for v in info.versions)
            missing = [w for w in words if w not in reason]
            report(f"config: {name}", info.state == unavailable and not missing,
                   f"state {info.state}, reason {reason!r}, missing {missing}")
        still_serves("the config checks")
    finally:
        stop_segserve(server)
    total = results["passed"] + results["failed"]
    print(f"{results['passed']} of {total} bad inputs answered as expected")
    print(f"bad input test: {'ok' if results['failed'] == 0 else 'FAILED'}")
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
