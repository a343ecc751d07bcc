#!/usr/bin/python3
"""End to end: the real segserve and segclient binaries on loopback.

Serves the shipped model_repository/, segments images with segclient, checks
the mask and overlay files, bad input handling, /metrics (with promtool when
installed) and a clean SIGTERM shutdown. Prints 'N passed, N failed'.
"""
import argparse
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import urllib.request
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", ".."))
from tests.segserve_process import (  # noqa: E402
    SegserveNotReady, start_segserve, stop_segserve)


def write_png(path, width, height, seed):
    """An 8-bit RGB PNG with a gradient and a bright square."""
    rows = []
    for y in range(height):
        row = bytearray()
        for x in range(width):
            inside = width // 4 < x < width // 2 and height // 4 < y < height // 2
            row += bytes((250, 30, 30) if inside else
                         ((x * 255 // width + seed) % 256, y * 255 // height, 90))
        rows.append(b"\x00" + bytes(row))

    def chunk(kind, data):
        body = kind + data
        return (struct.pack(">I", len(data)) + body +
                struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) +
                chunk(b"IDAT", zlib.compress(b"".join(rows))) +
                chunk(b"IEND", b""))


def png_size(path):
    with open(path, "rb") as f:
        data = f.read(24)
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    return struct.unpack(">II", data[16:24])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--segserve", required=True)
    parser.add_argument("--segclient", required=True)
    parser.add_argument("--model_repository", required=True)
    args = parser.parse_args()
    counts = {"passed": 0, "failed": 0}

    def check(name, condition, detail=""):
        counts["passed" if condition else "failed"] += 1
        print(f"[{' OK ' if condition else 'FAIL'}] {name} {'' if condition else detail}")

    tmp = tempfile.mkdtemp(prefix="segserve-e2e-")
    log_path = os.path.join(tmp, "server.log")
    try:
        server, grpc_port, metrics_port = start_segserve(args.segserve, [
            f"--model_repository={args.model_repository}",
            "--default_model=scenes-sgcpnet", "--grpc_port=0", "--http_port=-1",
            "--metrics_port=0", "--host=127.0.0.1", "--intra_op_threads=2"],
            log_path, timeout_s=180)
    except SegserveNotReady as error:
        print(error)
        print("0 passed, 1 failed")
        return 1
    target = f"127.0.0.1:{grpc_port}"

    def segclient(*extra):
        return subprocess.run([args.segclient, f"--target={target}", *extra],
                              capture_output=True, text=True, timeout=120)

    try:
        for width, height in [(640, 480), (300, 517)]:
            image = os.path.join(tmp, f"in_{width}x{height}.png")
            mask = os.path.join(tmp, f"mask_{width}x{height}.png")
            overlay = os.path.join(tmp, f"overlay_{width}x{height}.png")
            write_png(image, width, height, seed=width)
            run = segclient(f"--image={image}", f"--mask={mask}",
                            f"--overlay={overlay}")
            check(f"segclient {width}x{height} exits 0", run.returncode == 0,
                  run.stdout + run.stderr)
            check(f"mask PNG has the input's size {width}x{height}",
                  os.path.exists(mask) and png_size(mask) == (width, height),
                  str(os.path.exists(mask) and png_size(mask)))
            check(f"overlay PNG has the input's size {width}x{height}",
                  os.path.exists(overlay) and png_size(overlay) == (width, height))
            check("segclient prints classes and timing",
                  "inference" in run.stdout and "%" in run.stdout, run.stdout)

        for encoding in ["raw", "rle"]:
            image = os.path.join(tmp, "in_640x480.png")
            mask = os.path.join(tmp, f"mask_{encoding}.png")
            run = segclient(f"--image={image}", f"--mask={mask}",
                            f"--encoding={encoding}")
            same = run.returncode == 0 and open(mask, "rb").read() == open(
                os.path.join(tmp, "mask_640x480.png"), "rb").read()
            check(f"{encoding} mask encoding gives the same mask", same,
                  run.stdout + run.stderr)

        garbage = os.path.join(tmp, "garbage.jpg")
        with open(garbage, "wb") as f:
            f.write(b"\xff\xd8\xff\xe0 this is not really a jpeg" * 10)
        run = segclient(f"--image={garbage}",
                        f"--mask={os.path.join(tmp, 'never.png')}")
        check("garbage image: segclient exits 1 with INVALID_ARGUMENT",
              run.returncode == 1 and "INVALID_ARGUMENT" in run.stdout + run.stderr,
              run.stdout + run.stderr)
        run = segclient(f"--image={os.path.join(tmp, 'in_640x480.png')}",
                        "--model=nope")
        check("unknown model: NOT_FOUND", "NOT_FOUND" in run.stdout + run.stderr,
              run.stdout + run.stderr)
        run = segclient(f"--image={os.path.join(tmp, 'in_300x517.png')}")
        check("server still serves after bad input", run.returncode == 0,
              run.stdout + run.stderr)

        metrics = urllib.request.urlopen(
            f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
        check("metrics count the requests",
              re.search(r'segserve_requests_total\{code="OK",model="[^"]+",'
                        r'version="1"\} [1-9]', metrics) is not None and
              'code="INVALID_ARGUMENT"' in metrics, metrics[:2000])
        promtool = shutil.which("promtool")
        if promtool:
            lint = subprocess.run([promtool, "check", "metrics"], input=metrics,
                                  capture_output=True, text=True)
            check("promtool check metrics accepts /metrics",
                  lint.returncode == 0, lint.stdout + lint.stderr)
        else:
            print("[SKIP] promtool is not installed")
    finally:
        code = stop_segserve(server)
        check("SIGTERM: segserve exits 0", code == 0, f"exit {code}")
        with open(log_path) as log:
            text = log.read()
        check("server log has timestamps and levels",
              re.search(r"^\d{4}-\d\d-\d\dT[\d:.]+Z INFO ", text, re.M) is not None)
        if counts["failed"]:
            print("--- server log ---\n" + text[-4000:])
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"{counts['passed']} passed, {counts['failed']} failed")
    return 0 if counts["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
