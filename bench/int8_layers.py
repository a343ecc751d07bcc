#!/usr/bin/python3
"""Per-layer int8 against fp32: would any of SGCPNet's convolutions be faster
in int8 on this CPU with Debian's LibTorch (oneDNN engine)?

For every distinct convolution of SGCPNet at the served size (the Python
reference of tests/model/sgcpnet_reference.py, hooked to record each
conv's input shape), times on the same threads, medians of --repeats:
  fp32        F.conv2d on channels-last input and weight (as segserve runs
              SGCPNet after PrepareForInference);
  int8        quantized::conv2d on a quint8 channels-last input with
              per-channel qint8 weights prepacked for oneDNN, quint8 out: the
              best case, where the neighbouring layers are int8 too;
  int8+q/dq   the same with the fp32 input quantized before and the output
              dequantized after: what one int8 layer costs among fp32 ones
              (mixed precision).
It runs under the Python peer's malloc settings (run_bench.PEER_ENV): with
glibc's defaults every large output is a fresh mmap and its pages fault in
on every call, which would time the kernel rather than the convolution.
Prints a Markdown table (the time of each row is per call; "calls" is how
many times one forward pass runs that layer) and the totals.

  /usr/bin/python3 bench/int8_layers.py [--batch 8] [--size 512] [--threads 2]
"""

import argparse
import importlib.util
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_reference():
    path = os.path.join(ROOT, "tests", "model", "sgcpnet_reference.py")
    spec = importlib.util.spec_from_file_location("sgcpnet_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def record_convs(net, batch, size):
    """(signature, conv, input shape) of each distinct conv, with counts."""
    seen = {}

    def hook(conv, inputs, _output):
        shape = tuple(inputs[0].shape)
        key = (shape, conv.out_channels, conv.kernel_size, conv.stride,
               conv.padding, conv.groups)
        if key in seen:
            seen[key][2] += 1
        else:
            seen[key] = [conv, shape, 1]

    handles = [m.register_forward_hook(hook) for m in net.modules()
               if isinstance(m, torch.nn.Conv2d)]
    with torch.inference_mode():
        net(torch.randn(batch, 3, size, size))
    for h in handles:
        h.remove()
    return seen


def median_ms(run, repeats):
    run()
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def time_layer(conv, shape, repeats):
    cl = torch.channels_last
    x = torch.randn(shape).contiguous(memory_format=cl)
    weight = conv.weight.detach().contiguous(memory_format=cl)
    bias = torch.randn(conv.out_channels)
    args = (conv.stride, conv.padding, conv.dilation, conv.groups)
    fp32 = median_ms(lambda: F.conv2d(x, weight, bias, *args), repeats)

    scale = float(x.abs().max()) / 127
    qx = torch.quantize_per_tensor(x, scale, 128, torch.quint8)
    w_scales = weight.abs().amax(dim=(1, 2, 3)).clamp(min=1e-8) / 127
    qw = torch.quantize_per_channel(weight, w_scales,
                                    torch.zeros_like(w_scales, dtype=torch.long),
                                    0, torch.qint8)
    packed = torch.ops.quantized.conv2d_prepack(
        qw, bias, list(conv.stride), list(conv.padding), list(conv.dilation),
        conv.groups)
    out_scale = scale * 4

    def int8():
        return torch.ops.quantized.conv2d(qx, packed, out_scale, 128)

    def mixed():
        q = torch.quantize_per_tensor(x, scale, 128, torch.quint8)
        return torch.ops.quantized.conv2d(q, packed, out_scale,
                                          128).dequantize()

    return fp32, median_ms(int8, repeats), median_ms(mixed, repeats)


def describe(conv, shape):
    k = "x".join(str(v) for v in conv.kernel_size)
    kind = "depthwise" if conv.groups == conv.in_channels > 1 else "dense"
    stride = f", stride {conv.stride[0]}" if conv.stride[0] > 1 else ""
    return (f"{kind} {k} {conv.in_channels}->{conv.out_channels}{stride} "
            f"at {shape[2]}x{shape[3]}")


def main():
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    import run_bench
    if any(os.environ.get(k) != v for k, v in run_bench.PEER_ENV.items()):
        os.execve(sys.executable, [sys.executable] + sys.argv,
                  dict(os.environ, **run_bench.PEER_ENV))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--top", type=int, default=0,
                        help="only the N slowest fp32 layers (0: all)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.backends.quantized.engine = "onednn"
    torch.manual_seed(0)
    net = load_reference().SgcpNet().eval()
    layers = record_convs(net, args.batch, args.size)
    rows = []
    with torch.inference_mode():
        for conv, shape, calls in layers.values():
            fp32, int8, mixed = time_layer(conv, shape, args.repeats)
            rows.append((describe(conv, shape), calls, fp32, int8, mixed))
    rows.sort(key=lambda r: -r[1] * r[2])
    if args.top:
        rows = rows[:args.top]
    print(f"SGCPNet convolutions, batch {args.batch} at {args.size}x"
          f"{args.size}, {args.threads} threads, torch {torch.__version__}, "
          f"engine onednn, medians of {args.repeats}\n")
    print("| layer | calls | fp32 ms | int8 ms | int8 / fp32 | "
          "int8+q/dq ms | int8+q/dq / fp32 |")
    print("|---|---|---|---|---|---|---|")
    totals = [0.0, 0.0, 0.0]
    for name, calls, fp32, int8, mixed in rows:
        for i, v in enumerate((fp32, int8, mixed)):
            totals[i] += calls * v
        print(f"| {name} | {calls} | {fp32:.3f} | {int8:.3f} | "
              f"{int8 / fp32:.2f} | {mixed:.3f} | {mixed / fp32:.2f} |")
    print(f"| all convolutions, per pass | | {totals[0]:.2f} | "
          f"{totals[1]:.2f} | {totals[1] / totals[0]:.2f} | {totals[2]:.2f} | "
          f"{totals[2] / totals[0]:.2f} |")
    faster = [r for r in rows if r[4] < r[2]]
    print(f"\nLayers faster in int8 even with q/dq: {len(faster)} of "
          f"{len(rows)}", file=sys.stderr)


if __name__ == "__main__":
    main()
