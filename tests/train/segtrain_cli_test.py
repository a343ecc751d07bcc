#!/usr/bin/python3
"""segtrain from the command line on a folder dataset of the documented
format: trains, writes weights, scores them; refuses a malformed dataset
with the file's name; stops and resumes a run; trains a teacher and distils
a student from it as train/README.md's worked example does."""
import argparse
import os
import struct
import subprocess
import sys
import tempfile
import zlib


def write_png(path, width, height, channels, pixel):
    """8-bit PNG; pixel(x, y) returns a tuple of `channels` values."""
    rows = b"".join(
        b"\x00" + bytes(v for x in range(width) for v in pixel(x, y))
        for y in range(height))

    def chunk(kind, data):
        body = kind + data
        return (struct.pack(">I", len(data)) + body +
                struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF))

    color_type = 2 if channels == 3 else 0
    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) +
                chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def make_dataset(root, count):
    os.makedirs(os.path.join(root, "images"))
    os.makedirs(os.path.join(root, "masks"))
    with open(os.path.join(root, "classes.txt"), "w") as f:
        f.write("background\nsquare\n")
    for i in range(count):
        def inside(x, y, i=i):
            return 8 + i <= x < 40 + i and 10 <= y < 42
        write_png(os.path.join(root, "images", f"img{i}.png"), 64, 64, 3,
                  lambda x, y: (220, 40, 40) if inside(x, y) else (30, 90, 200))
        write_png(os.path.join(root, "masks", f"img{i}.png"), 64, 64, 1,
                  lambda x, y: (1,) if inside(x, y) else (0,))


CONFIG = """name: "tiny"
platform: BUILTIN
architecture: "sgcpnet"
num_classes: 2
class_names: ["background", "square"]
input { height: 64 width: 64 resize: STRETCH
        mean: [123.675, 116.28, 103.53] std: [58.395, 57.12, 57.375] }
max_batch_size: 2
"""

TEACHER_CONFIG = CONFIG.replace('name: "tiny"', 'name: "tiny-teacher"').replace(
    'architecture: "sgcpnet"', 'architecture: "cgrseg_t"')


def distils_as_the_readme_says(segtrain, tmp, data, check):
    """A teacher trained into its model directory, then a student distilled
    from it with every term; then from the teacher at another input size,
    reporting each term's gradient."""
    teacher = os.path.join(tmp, "tiny-teacher")
    os.makedirs(os.path.join(teacher, "1"))
    with open(os.path.join(teacher, "config.pbtxt"), "w") as f:
        f.write(TEACHER_CONFIG)
    common = [f"--data={data}", "--steps=2", "--batch_size=2", "--threads=1",
              "--warmup_steps=1", "--eval_images=0"]
    trained = subprocess.run(
        [segtrain, f"--model_dir={teacher}", *common,
         f"--output={os.path.join(teacher, '1', 'model.pt')}"],
        capture_output=True, text=True)
    check("trains a CGRSeg teacher into its model directory",
          trained.returncode == 0 and
          os.path.exists(os.path.join(teacher, "1", "model.pt")),
          trained.stdout + trained.stderr)
    student = os.path.join(tmp, "tiny")
    out = os.path.join(tmp, "distilled.pt")
    distilled = subprocess.run(
        [segtrain, f"--model_dir={student}", *common, f"--teacher={teacher}",
         "--pixel_relation_weight=1", "--class_relation_weight=1",
         "--kl_weight=1", f"--output={out}"], capture_output=True, text=True)
    check("distils a student from it with every term",
          distilled.returncode == 0 and os.path.exists(out) and
          "distilled from cgrseg_t" in distilled.stderr and
          all(term in distilled.stderr for term in ("pixel", "class", "kl")),
          distilled.stdout + distilled.stderr)
    with open(os.path.join(teacher, "config.pbtxt"), "w") as f:
        f.write(TEACHER_CONFIG.replace("height: 64 width: 64",
                                       "height: 96 width: 96"))
    resized = subprocess.run(
        [segtrain, f"--model_dir={student}", *common, f"--teacher={teacher}",
         "--kl_weight=1", "--report_gradients", f"--output={out}.2"],
        capture_output=True, text=True)
    check("distils from a teacher of another input size, with gradients",
          resized.returncode == 0 and os.path.exists(out + ".2") and
          "gradients: ce " in resized.stderr and ", kl " in resized.stderr,
          resized.stdout + resized.stderr)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--segtrain", required=True)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="segtrain-cli-")
    model_dir = os.path.join(tmp, "tiny")
    os.makedirs(model_dir)
    with open(os.path.join(model_dir, "config.pbtxt"), "w") as f:
        f.write(CONFIG)
    data = os.path.join(tmp, "data")
    make_dataset(data, 3)
    failures = []
    checks = []

    def run(*extra):
        return subprocess.run([args.segtrain, f"--model_dir={model_dir}",
                               f"--data={data}", "--steps=4",
                               "--batch_size=2", "--threads=1",
                               "--warmup_steps=1", f"--eval_data={data}",
                               "--eval_first=0", "--eval_images=3", *extra],
                              capture_output=True, text=True)

    def check(name, ok, detail):
        checks.append(name)
        print(f"[{' OK ' if ok else 'FAIL'}] {name}")
        if not ok:
            failures.append(name)
            print(detail)

    out = os.path.join(tmp, "out.pt")
    result = run(f"--output={out}")
    check("trains on a folder dataset and scores it",
          result.returncode == 0 and os.path.exists(out) and
          "square" in result.stdout and "mIoU" in result.stdout,
          result.stdout + result.stderr)
    check("prints progress", "step 4/4" in result.stderr, result.stderr)

    checkpoint = os.path.join(tmp, "checkpoint")
    stopped = run(f"--output={out}.2", f"--checkpoint_dir={checkpoint}",
                  "--stop_after_step=2")
    check("stops after a step with a checkpoint",
          stopped.returncode == 0 and "--resume" in stopped.stderr and
          os.path.exists(os.path.join(checkpoint, "trainer_state.pt")) and
          not os.path.exists(out + ".2"), stopped.stderr)
    resumed = run(f"--output={out}.2", f"--resume={checkpoint}")
    check("resumes and finishes",
          resumed.returncode == 0 and "resumed at step 2" in resumed.stderr and
          os.path.exists(out + ".2"), resumed.stderr)

    distils_as_the_readme_says(args.segtrain, tmp, data, check)

    letterboxed = run(f"--output={out}.4", "--letterbox_share=1")
    check("trains on letterboxed samples",
          letterboxed.returncode == 0 and os.path.exists(out + ".4"),
          letterboxed.stderr)
    bad = run(f"--output={out}.5", "--letterbox_share=1.5")
    check("a letterbox share beyond 0..1 is refused with the range",
          bad.returncode == 1 and "allowed: 0..1" in bad.stderr, bad.stderr)

    os.remove(os.path.join(data, "masks", "img1.png"))
    bad = run(f"--output={out}.3")
    check("a missing mask is refused with the image's name",
          bad.returncode == 1 and "img1.png: has no mask" in bad.stderr,
          bad.stderr)
    bad = subprocess.run([args.segtrain, f"--model_dir={model_dir}",
                          "--data=scenes", "--steps=1"],
                         capture_output=True, text=True)
    check("scenes with a 2-class config are refused",
          bad.returncode == 1 and "6 classes" in bad.stderr, bad.stderr)
    print(f"{len(checks) - len(failures)} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
