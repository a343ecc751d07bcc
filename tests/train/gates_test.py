#!/usr/bin/python3
"""Accuracy gates of the shipped scene models, through the real binaries.

Starts segserve on a model repository, then scores held-out scenes (seeds
that training never draws) with segscore, which draws each scene, sends it
encoded as its seed says (PNG or JPEG) and compares the returned mask with
the scene's exact labels. segscore exits 1 when a gate is missed. With
--segdemo, also checks the demo's files for one scene on the same server.
"""
import argparse
import os
import re
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", ".."))
from tests.segserve_process import start_segserve, stop_segserve  # noqa: E402


def png_size(path):
    """(width, height) from a PNG's IHDR chunk, or None."""
    with open(path, "rb") as f:
        head = f.read(24)
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    return struct.unpack(">II", head[16:24])


def demo_writes_its_files(segdemo, port, tmp):
    """segdemo writes the scene, a mask of the scene's size and an overlay."""
    out_dir = os.path.join(tmp, "demo")
    result = subprocess.run([segdemo, f"--target=127.0.0.1:{port}",
                             "--seed=3", f"--out_dir={out_dir}"],
                            capture_output=True, text=True)
    print("--- segdemo --seed=3")
    print(result.stdout + result.stderr, end="")
    size = re.search(r"scene 3 \((\d+)x(\d+),", result.stdout)
    scene = [name for name in ("scene.png", "scene.jpg")
             if os.path.exists(os.path.join(out_dir, name))]
    ok = (result.returncode == 0 and "IoU against" in result.stdout
          and size is not None and len(scene) == 1)
    if ok:
        expected = (int(size.group(1)), int(size.group(2)))
        ok = all(png_size(os.path.join(out_dir, name)) == expected
                 for name in ("mask.png", "overlay.png"))
    print("PASS" if ok else "FAIL")
    return ok


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--segserve", required=True)
    parser.add_argument("--segscore", required=True)
    parser.add_argument("--segdemo", help="also run the one-scene demo")
    parser.add_argument("--model_repository", required=True)
    parser.add_argument("--gate", action="append", required=True,
                        help="MODEL:SCENES:MIN_MIOU:MIN_CLASS_IOU[:WxH]"
                        "[:noisy] (noisy: the scenes' noise over the "
                        "objects too)")
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix="segserve-gates-")
    server, port, _ = start_segserve(
        args.segserve,
        ["--model_repository=" + args.model_repository, "--grpc_port=0", "--http_port=-1",
         "--metrics_port=0", "--host=127.0.0.1", "--intra_op_threads=2",
         "--default_model=scenes-sgcpnet"],
        os.path.join(tmp, "server.log"))
    failed = 0
    try:
        for gate in args.gate:
            parts = gate.split(":")
            model, count, min_miou, min_class = parts[:4]
            command = [args.segscore, f"--target=127.0.0.1:{port}",
                       f"--model={model}", "--first_seed=0",
                       f"--count={count}", f"--min_miou={min_miou}",
                       f"--min_class_iou={min_class}"]
            for option in parts[4:]:
                if option == "noisy":
                    command.append("--noise_over_objects")
                else:
                    width, height = option.split("x")
                    command += [f"--width={width}", f"--height={height}"]
            started = time.time()
            result = subprocess.run(command, capture_output=True, text=True)
            print(f"--- {gate} ({time.time() - started:.1f} s)")
            print(result.stdout + result.stderr, end="")
            print("PASS" if result.returncode == 0 else "FAIL")
            failed += result.returncode != 0
        if args.segdemo:
            failed += not demo_writes_its_files(args.segdemo, port, tmp)
    finally:
        stop_segserve(server)
    checks = len(args.gate) + bool(args.segdemo)
    print(f"{checks - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
