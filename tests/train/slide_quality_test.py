#!/usr/bin/python3
"""SLIDE against STRETCH on images four times the model's input, through the
real server and the shipped default model.

The images are 2048 x 2048 mosaics of sixteen 512 x 512 held-out scenes
(segscore --mosaic 4): objects at the scale the model learnt, in an image
that STRETCH shrinks four times. The same weights are served twice from a
temporary repository: as shipped (512 x 512 STRETCH) and as SLIDE with
512 x 512 tiles every 341 pixels (36 tiles per image). SLIDE must beat
STRETCH by at least 0.10 mIoU.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", ".."))
from tests.segserve_process import start_segserve, stop_segserve  # noqa: E402

MODEL = "scenes-sgcpnet"
MIN_GAIN = 0.10


def slide_config(text):
    """The shipped config, renamed, with SLIDE tiles of the input size."""
    text = re.sub(r'name: "[^"]*"', f'name: "{MODEL}-slide"', text)
    text, count = re.subn(r"resize: STRETCH",
                          "resize: SLIDE stride_height: 341 "
                          "stride_width: 341", text)
    assert count == 1, "the shipped config names resize: STRETCH once"
    return text


def score(segscore, port, model, mosaics):
    result = subprocess.run(
        [segscore, f"--target=127.0.0.1:{port}", f"--model={model}",
         "--first_seed=40000", f"--count={mosaics}", "--mosaic=4",
         "--concurrency=2", "--deadline_ms=600000"],
        capture_output=True, text=True)
    print(f"--- {model}")
    print(result.stdout + result.stderr, end="")
    match = re.search(r"mIoU (\d+\.\d+)", result.stdout)
    return float(match.group(1)) if result.returncode == 0 and match else None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--segserve", required=True)
    parser.add_argument("--segscore", required=True)
    parser.add_argument("--model_repository", required=True)
    parser.add_argument("--mosaics", type=int, default=4)
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix="segserve-slide-quality-")
    repo = os.path.join(tmp, "repo")
    shutil.copytree(os.path.join(args.model_repository, MODEL),
                    os.path.join(repo, MODEL))
    shutil.copytree(os.path.join(args.model_repository, MODEL),
                    os.path.join(repo, MODEL + "-slide"))
    config_path = os.path.join(repo, MODEL + "-slide", "config.pbtxt")
    with open(config_path) as f:
        text = slide_config(f.read())
    with open(config_path, "w") as f:
        f.write(text)

    server, port, _ = start_segserve(
        args.segserve,
        ["--model_repository=" + repo, "--grpc_port=0", "--http_port=-1", "--metrics_port=0",
         "--host=127.0.0.1", "--intra_op_threads=2",
         f"--default_model={MODEL}"],
        os.path.join(tmp, "server.log"))
    try:
        stretch = score(args.segscore, port, MODEL, args.mosaics)
        slide = score(args.segscore, port, MODEL + "-slide", args.mosaics)
    finally:
        stop_segserve(server)
    if stretch is None or slide is None:
        print("FAIL: a scoring run failed")
        return 1
    gain = slide - stretch
    print(f"mosaics of 2048x2048: STRETCH mIoU {stretch:.4f}, SLIDE mIoU "
          f"{slide:.4f}, gain {gain:+.4f} (at least {MIN_GAIN:+.2f})")
    if gain < MIN_GAIN:
        print("FAIL")
        return 1
    print("slide quality test: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
