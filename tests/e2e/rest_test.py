#!/usr/bin/python3
"""The HTTP frontend against the real segserve and its shipped models, with
a client written from the KServe v2 REST spec (urllib, nothing of the
project's) and with curl.

Checks every endpoint, the JSON and binary tensor forms, that REST masks
equal Segment's (gRPC) pixel for pixel, that Segment, ModelInfer and REST
each count one request in the statistics however many images they carry,
bearer tokens with their rights, more than 40 malformed requests with their
exact codes and words (the server serves afterwards), slow clients, header
and chunk floods, and the drain: readiness 503, accepted requests answered.
"""
import argparse
import base64
import http.client as http_client
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", ".."))
from tests.e2e.oip_test import generate_stubs, png_bytes, rle_decode, scene  # noqa: E402
from tests.segserve_process import SegserveProcess, ready_http_port  # noqa: E402

MODEL = "scenes-sgcpnet"
failures = []


def check(condition, what):
    print(("ok   " if condition else "FAIL ") + what)
    if not condition:
        failures.append(what)


class Http:
    """A client of the REST API at 127.0.0.1:port, from the spec alone."""

    def __init__(self, port, token=None):
        self.base = f"http://127.0.0.1:{port}"
        self.token = token

    def call(self, method, path, body=None, headers=None, timeout=60):
        """(status, headers, body bytes); HTTP errors are answers too."""
        headers = dict(headers or {})
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        request = urllib.request.Request(self.base + path, data=body,
                                         method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    def json(self, method, path, body=None, headers=None):
        status, _, data = self.call(method, path, body, headers)
        try:
            return status, json.loads(data) if data else None
        except ValueError:
            return status, data


def raw_exchange(port, data, timeout=10):
    """Sends raw bytes; returns what comes back until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except OSError:
            pass
        chunks = []
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except OSError:
            pass
        return b"".join(chunks)


def png_size(data):
    """(width, height) of a PNG, or None."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    return struct.unpack(">II", data[16:24])


def binary_infer(http, images, outputs, path=f"/v2/models/{MODEL}/infer"):
    """A ModelInfer of encoded `images` with the binary tensor extension;
    returns (status, json, {output name: bytes})."""
    tail = b"".join(struct.pack("<I", len(i)) + i for i in images)
    header = json.dumps({
        "inputs": [{"name": "IMAGE", "datatype": "BYTES",
                    "shape": [len(images)],
                    "parameters": {"binary_data_size": len(tail)}}],
        "parameters": {"mask_encoding": "raw"},
        "outputs": [{"name": n, "parameters": {"binary_data": True}}
                    for n in outputs]}).encode()
    status, headers, body = http.call(
        "POST", path, header + tail,
        {"Inference-Header-Content-Length": str(len(header)),
         "Content-Type": "application/octet-stream"})
    if status != 200:
        return status, json.loads(body), {}
    length = int(headers.get("Inference-Header-Content-Length", len(body)))
    answer = json.loads(body[:length])
    binary, at = {}, length
    for output in answer["outputs"]:
        size = output.get("parameters", {}).get("binary_data_size")
        if size is not None:
            binary[output["name"]] = body[at:at + size]
            at += size
    return status, answer, binary


def stats(http):
    _, answer = http.json("GET", f"/v2/models/{MODEL}/versions/1/stats")
    entry = answer["model_stats"][0]
    return (entry["inference_stats"]["success"]["count"],
            entry["inference_count"])


def start(args, workdir, name, *flags):
    server = SegserveProcess(args.segserve, [
        f"--model_repository={args.model_repository}", "--host=127.0.0.1",
        "--default_model=scenes-sgcpnet", "--grpc_port=0", "--http_port=0",
        "--metrics_port=-1", "--cpu_cores=1", *flags],
        os.path.join(workdir, f"{name}.log"))
    grpc_port, _ = server.wait_ready(timeout_s=120)
    return server, grpc_port, ready_http_port(server.log_text())


def endpoints_and_masks(args, workdir, v1, v1_grpc, grpc):
    server, grpc_port, port = start(args, workdir, "segserve",
                                    "--http_max_body_bytes=4000000",
                                    "--http_timeout_s=2")
    http = Http(port)
    try:
        status, _, body = http.call("GET", "/v2/health/live")
        check(status == 200 and body == b"", f"live: {status}")
        status, _, _ = http.call("GET", "/v2/health/ready")
        check(status == 200, f"ready: {status}")
        status, meta = http.json("GET", "/v2")
        check(status == 200 and meta["name"] == "segserve" and
              "binary_tensor_data" in meta["extensions"],
              f"server metadata: {meta}")
        status, model = http.json("GET", f"/v2/models/{MODEL}")
        check(status == 200 and model["versions"] == ["1"] and
              model["inputs"] == [{"name": "IMAGE", "datatype": "BYTES",
                                   "shape": [-1]}] and
              model["outputs"][0]["name"] == "MASK",
              f"model metadata: {model}")
        status, same = http.json("GET", f"/v2/models/{MODEL}/versions/1")
        check(status == 200 and same == model, "metadata of version 1")
        status, _, _ = http.call("GET", f"/v2/models/{MODEL}/ready")
        check(status == 200, f"model ready: {status}")
        status, config = http.json("GET", f"/v2/models/{MODEL}/config")
        check(status == 200 and config["name"] == MODEL and
              config["max_batch_size"] == 8, f"config: {config}")
        status, index = http.json("POST", "/v2/repository/index", {})
        check(status == 200 and {(m["name"], m["state"]) for m in index} ==
              {(MODEL, "READY"), ("scenes-cgrseg-t", "READY")},
              f"repository index: {index}")
        status, every = http.json("GET", "/v2/models/stats")
        check(status == 200 and len(every["model_stats"]) == 2,
              f"stats of every model: {status}")

        # The reference: Segment's RAW masks through gRPC.
        channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}", options=[
            ("grpc.max_receive_message_length", 64 << 20)])
        segment = v1_grpc.SegmentationStub(channel).Segment
        images = [scene(1), scene(2)]
        height, width = images[0].shape[:2]
        reference = []
        for image in images:
            response = segment(v1.SegmentRequest(
                image=v1.Image(encoded=png_bytes(image)),
                mask_encoding=v1.RAW), timeout=60)
            reference.append(np.frombuffer(response.mask.data, np.uint8)
                             .reshape(height, width))
        check(len(np.unique(reference[0])) > 1, "the reference finds shapes")

        before = stats(http)
        # One Segment, counted once.
        segment(v1.SegmentRequest(image=v1.Image(encoded=png_bytes(images[0])),
                                  mask_encoding=v1.RAW), timeout=60)
        # ModelInfer over REST, JSON pixels, a batch of two: one request.
        status, answer = http.json("POST", f"/v2/models/{MODEL}/infer", {
            "id": "json-pixels",
            "inputs": [{"name": "IMAGE", "datatype": "UINT8",
                        "shape": [2, height, width, 3],
                        "data": np.stack(images).flatten().tolist()}],
            "outputs": [{"name": "MASK"}, {"name": "CLASS_PIXELS"}]})
        ok = status == 200 and answer["id"] == "json-pixels"
        masks = (np.array(answer["outputs"][0]["data"], np.uint8)
                 .reshape(2, height, width) if ok else None)
        check(ok and answer["outputs"][0]["shape"] == [2, height, width] and
              all((masks[i] == reference[i]).all() for i in range(2)),
              "REST JSON pixels: masks equal Segment's")
        pixels = answer["outputs"][1]["data"] if ok else []
        check(ok and sum(pixels) == 2 * height * width,
              f"CLASS_PIXELS counts every pixel: {pixels}")
        # Binary tensors: encoded PNGs in, RAW masks out as binary.
        status, answer, binary = binary_infer(
            http, [png_bytes(i) for i in images], ["MASK"])
        got = np.frombuffer(binary.get("MASK", b""), np.uint8)
        check(status == 200 and got.size == 2 * height * width and
              (got.reshape(2, height, width) == np.stack(reference)).all(),
              "REST binary tensors: masks equal Segment's")
        # The image endpoint, JSON with an RLE mask.
        status, answer = http.json(
            "POST", f"/v2/models/{MODEL}/segment?mask_encoding=rle",
            png_bytes(images[1]), {"Content-Type": "image/png"})
        mask = (rle_decode(base64.b64decode(answer["mask"]["data"]),
                           height * width) if status == 200 else None)
        check(mask is not None and (mask.reshape(height, width) ==
                                    reference[1]).all() and
              answer["model"] == MODEL and answer["width"] == width and
              abs(sum(c["share"] for c in answer["class_stats"]) - 1) < 1e-6
              and answer["timing"]["inference_us"] > 0,
              "the image endpoint's RLE mask equals Segment's")
        after = stats(http)
        check(after[0] - before[0] == 4 and after[1] - before[1] == 6,
              "Segment, ModelInfer and REST count one request each, and an "
              f"item per image: {before} -> {after}")

        # Raw pixels on the image endpoint.
        status, answer = http.json(
            "POST", f"/v2/models/{MODEL}/segment?width={width}&height={height}"
            "&format=rgb8&mask_encoding=raw&confidence=true",
            images[0].tobytes(), {"Content-Type": "application/octet-stream"})
        mask = (np.frombuffer(base64.b64decode(answer["mask"]["data"]),
                              np.uint8) if status == 200 else None)
        check(mask is not None and (mask.reshape(height, width) ==
                                    reference[0]).all() and
              len(base64.b64decode(answer["confidence"])) == height * width,
              "raw pixels with confidence")

        # curl, as README shows it.
        scene_path = os.path.join(workdir, "scene.png")
        mask_path = os.path.join(workdir, "mask.png")
        with open(scene_path, "wb") as f:
            f.write(png_bytes(images[0]))
        out = subprocess.run(
            ["curl", "-sS", "-o", mask_path, "-w", "%{http_code}",
             "--data-binary", f"@{scene_path}", "-H", "Content-Type: image/png",
             "-H", "Accept: image/png",
             f"http://127.0.0.1:{port}/v2/models/{MODEL}/segment"],
            capture_output=True, text=True, timeout=60)
        with open(mask_path, "rb") as f:
            size = png_size(f.read())
        check(out.stdout == "200" and size == (width, height),
              f"curl writes the mask PNG: {out.stdout} {size}")
        out = subprocess.run(
            ["curl", "-sS", f"http://127.0.0.1:{port}/v2/health/ready",
             "-o", "/dev/null", "-w", "%{http_code}"],
            capture_output=True, text=True, timeout=30)
        check(out.stdout == "200", f"curl readiness: {out.stdout}")

        malformed(http, port, height, width, images)

        # The server serves after all of that.
        status, _, _ = http.call("GET", "/v2/health/ready")
        status2, answer, binary = binary_infer(http, [png_bytes(images[0])],
                                               ["MASK"])
        check(status == 200 and status2 == 200 and
              np.array_equal(np.frombuffer(binary["MASK"], np.uint8)
                             .reshape(height, width), reference[0]),
              "serves after the malformed requests")
    finally:
        code = server.stop()
        check(code == 0, f"segserve exited {code}")


def malformed(http, port, height, width, images):
    infer = f"/v2/models/{MODEL}/infer"
    png = png_bytes(images[0])

    def pixels(shape):
        return {"inputs": [{"name": "IMAGE", "datatype": "UINT8",
                            "shape": shape, "data": [1] * int(np.prod(shape))}]}

    def lying(size):
        """A binary-extension JSON part that says `size` bytes follow."""
        return json.dumps({"inputs": [{
            "name": "IMAGE", "datatype": "BYTES", "shape": [1],
            "parameters": {"binary_data_size": size}}]}).encode()

    def bytes_input(**extra):
        return {"inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": [1],
                            "data": ["x"]}], **extra}

    # (what, method, path, body, headers, code, words)
    cases = [
        ("bad JSON", "POST", infer, b"{\"inputs\": [", {}, 400, "not valid JSON"),
        ("deep nesting", "POST", infer,
         b'{"inputs": ' + b"[" * 5000 + b"]" * 5000 + b"}", {}, 400,
         "nests deeper than 32"),
        ("invalid UTF-8", "POST", infer, b'{"id": "\xff"}', {}, 400,
         "not valid JSON"),
        ("not an object", "POST", infer, b"[1]", {}, 400, "is an array"),
        ("unknown key", "POST", infer, {"inputs": [], "x": 1}, {}, 400,
         "unknown key 'x'"),
        ("inputs not an array", "POST", infer, {"inputs": {}}, {}, 400,
         "inputs is an object"),
        ("no inputs", "POST", infer, {"inputs": []}, {}, 400, "has no inputs"),
        ("two inputs", "POST", infer,
         {"inputs": pixels([1, 2, 3])["inputs"] * 2}, {}, 400,
         "takes one input, IMAGE"),
        ("input misnamed", "POST", infer,
         {"inputs": [dict(pixels([1, 2, 3])["inputs"][0], name="PIXELS")]}, {},
         400, "the first 'PIXELS'"),
        ("wrong datatype", "POST", infer,
         {"inputs": [{"name": "IMAGE", "datatype": "FP32", "shape": [1],
                      "data": [1.0]}]}, {}, 400, "IMAGE has datatype 'FP32'"),
        ("wrong shape", "POST", infer, pixels([2, 2]), {}, 400,
         "IMAGE is UINT8 [2, 2]"),
        ("data shorter than the shape", "POST", infer,
         {"inputs": [{"name": "IMAGE", "datatype": "UINT8", "shape": [4, 4, 3],
                      "data": [1, 2, 3]}]}, {}, 400, "the data of IMAGE holds 3"),
        ("UINT8 over 255", "POST", infer,
         {"inputs": [{"name": "IMAGE", "datatype": "UINT8", "shape": [1, 1, 3],
                      "data": [1, 2, 300]}]}, {}, 400, "outside 0..255"),
        ("BYTES not strings", "POST", infer,
         {"inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": [1],
                      "data": [7]}]}, {}, 400, "BYTES elements are strings"),
        ("negative dimension", "POST", infer, pixels([1, 1, 3]) | {
            "inputs": [{"name": "IMAGE", "datatype": "UINT8",
                        "shape": [-1, 1, 3], "data": [1, 2, 3]}]}, {}, 400,
         "integer of 0 or more"),
        ("unknown output", "POST", infer,
         bytes_input(outputs=[{"name": "LOGITS"}]), {}, 400,
         "unknown output 'LOGITS'"),
        ("output twice", "POST", infer,
         bytes_input(outputs=[{"name": "MASK"}, {"name": "MASK"}]), {}, 400,
         "asked for twice"),
        ("bad mask_encoding", "POST", infer,
         bytes_input(parameters={"mask_encoding": "gif"}), {}, 400,
         "mask_encoding must be"),
        ("negative priority", "POST", infer,
         bytes_input(parameters={"priority": -2}), {}, 400,
         "priority must be an integer"),
        ("unknown parameter", "POST", infer,
         bytes_input(parameters={"colour": "red"}), {}, 400,
         "unknown parameter 'colour'"),
        ("undecodable image", "POST", infer, bytes_input(), {}, 400,
         "image"),
        ("empty image element", "POST", infer,
         {"inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": [1],
                      "data": [""]}]}, {}, 400, "IMAGE element 0 is empty"),
        ("more images than max_batch_size", "POST", infer,
         {"inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": [9],
                      "data": ["x"] * 9}]}, {}, 400, "takes at most 8"),
        ("binary size beyond the body", "POST", infer, lying(100) + b"xyz",
         {"Inference-Header-Content-Length": str(len(lying(100)))}, 400,
         "binary_data_size 100 but 3 bytes"),
        ("binary left over", "POST", infer, lying(1) + b"xyz",
         {"Inference-Header-Content-Length": str(len(lying(1)))}, 400,
         "2 bytes of binary data follow"),
        ("header length beyond the body", "POST", infer, b"{}",
         {"Inference-Header-Content-Length": "99"}, 400, "the body holds 2"),
        ("header length not a number", "POST", infer, b"{}",
         {"Inference-Header-Content-Length": "ten"}, 400,
         "the JSON part's length"),
        ("data and binary both", "POST", infer,
         {"inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": [1],
                      "data": ["x"], "parameters": {"binary_data_size": 1}}]},
         {}, 400, "has both"),
        ("bad deadline header", "POST", infer, bytes_input(),
         {"Request-Timeout-Ms": "soon"}, 400, "Request-Timeout-Ms is 'soon'"),
        ("unknown model", "POST", "/v2/models/nope/infer", bytes_input(), {},
         404, "unknown model 'nope'"),
        ("dot-dot model", "GET", "/v2/models/..%2F..%2Fetc/config", None, {},
         404, "unknown model"),
        ("NUL in a model name", "GET", "/v2/models/a%00b", None, {}, 404,
         "unknown model"),
        ("unknown version", "GET", f"/v2/models/{MODEL}/versions/7", None, {},
         404, "version"),
        ("unknown path", "GET", "/v3/anything", None, {}, 404, "no such path"),
        ("unknown model action", "GET", f"/v2/models/{MODEL}/explain", None,
         {}, 404, "no such path"),
        ("GET on infer", "GET", infer, None, {}, 405, "send POST"),
        ("POST on metadata", "POST", f"/v2/models/{MODEL}", b"{}", {}, 405,
         "send GET"),
        ("load without explicit mode", "POST",
         f"/v2/repository/models/{MODEL}/load", b"", {}, 400,
         "control mode is none"),
        ("load with an unknown parameter", "POST",
         f"/v2/repository/models/{MODEL}/load",
         {"parameters": {"weights": "x"}}, {}, 400, "config"),
        ("unload with parameters", "POST",
         f"/v2/repository/models/{MODEL}/unload", {"parameters": {"a": 1}},
         {}, 400, "takes no parameters"),
        ("index body not JSON", "POST", "/v2/repository/index", b"ready", {},
         400, "not valid JSON"),
        ("index with an unknown key", "POST", "/v2/repository/index",
         {"all": True}, {}, 400, "takes one key, ready"),
        ("segment: not an image type", "POST", f"/v2/models/{MODEL}/segment",
         b"hello", {"Content-Type": "text/plain"}, 400,
         "not an image this endpoint takes"),
        ("segment: empty body", "POST", f"/v2/models/{MODEL}/segment", b"",
         {"Content-Type": "image/png"}, 400, "the body is empty"),
        ("segment: raw without a size", "POST", f"/v2/models/{MODEL}/segment",
         b"abc", {"Content-Type": "application/octet-stream"}, 400,
         "need ?width=W&height=H"),
        ("segment: raw of the wrong size", "POST",
         f"/v2/models/{MODEL}/segment?width=4&height=4", b"abc",
         {"Content-Type": "application/octet-stream"}, 400,
         "pixels are 48"),
        ("segment: bad mask_encoding", "POST",
         f"/v2/models/{MODEL}/segment?mask_encoding=gif", png,
         {"Content-Type": "image/png"}, 400, "allowed: png, raw, rle"),
        ("segment: unanswerable Accept", "POST", f"/v2/models/{MODEL}/segment",
         png, {"Content-Type": "image/png", "Accept": "text/html"}, 400,
         "cannot be answered"),
        ("segment: undecodable image", "POST", f"/v2/models/{MODEL}/segment",
         b"\x89PNG\r\n\x1a\nnot really", {"Content-Type": "image/png"}, 400,
         "PNG"),
        ("segment: a header over the pixel limit", "POST",
         f"/v2/models/{MODEL}/segment",
         png[:16] + struct.pack(">II", 60000, 60000) + png[24:],
         {"Content-Type": "image/png"}, 400, "pixels"),
    ]
    for what, method, path, body, headers, code, words in cases:
        status, answer = http.json(method, path, body, headers)
        error = answer.get("error", "") if isinstance(answer, dict) else ""
        check(status == code and words in error,
              f"{what}: {status} {error[:160]!r}")
    check(len(cases) >= 40, f"{len(cases)} malformed requests")

    # Below HTTP's own parsing: lies, floods and slow clients.
    body = b"{" + b" " * 4100000 + b"}"
    reply = raw_exchange(port, (
        f"POST {infer} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n").encode() + body)
    check(reply.startswith(b"HTTP/1.1 413"),
          f"a body over --http_max_body_bytes: {reply[:40]!r}")
    reply = raw_exchange(port, (
        f"POST {infer} HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n"
        "Connection: close\r\n\r\n{}").encode())
    check(reply.startswith(b"HTTP/1.1 413"),
          f"a huge Content-Length: {reply[:40]!r}")
    chunks = (f"POST {infer} HTTP/1.1\r\nHost: x\r\n"
              "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode()
    chunks += b"".join(b"1000\r\n" + b" " * 4096 + b"\r\n" for _ in range(1100))
    reply = raw_exchange(port, chunks + b"0\r\n\r\n")
    check(reply.startswith(b"HTTP/1.1 413"),
          f"a flood of chunks past the body limit: {reply[:40]!r}")
    flood = f"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n".encode()
    flood += b"".join(b"X-Flood-%d: %s\r\n" % (i, b"y" * 64)
                      for i in range(1000))
    reply = raw_exchange(port, flood + b"\r\n")
    check(not reply.startswith(b"HTTP/1.1 200"),
          f"a flood of headers is refused: {reply[:40]!r}")
    start = time.time()
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(b"POST " + infer.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Length: 100\r\n\r\n{")
        try:
            closed = s.recv(1024) is not None
        except OSError:
            closed = True
    check(closed and time.time() - start < 10,
          f"a slow client is closed after --http_timeout_s: "
          f"{time.time() - start:.1f} s")
    status, _ = http.json("PUT", "/v2/health/live", b"")
    check(status in (405, 501), f"PUT is not served: {status}")


def tokens(args, workdir):
    path = os.path.join(workdir, "tokens")
    with open(path, "w") as f:
        f.write("reader-token-0123456789 metadata\n"
                "runner-token-0123456789 inference\n")
    server, _, port = start(args, workdir, "tokens",
                            f"--auth_tokens_file={path}")
    try:
        image = png_bytes(scene(3))
        anonymous, reader = Http(port), Http(port, "reader-token-0123456789")
        runner = Http(port, "runner-token-0123456789")
        check(anonymous.call("GET", "/v2/health/ready")[0] == 200,
              "health needs no token")
        status, answer = anonymous.json("GET", f"/v2/models/{MODEL}")
        check(status == 401 and "error" in answer,
              f"metadata without a token: {status}")
        check(reader.json("GET", f"/v2/models/{MODEL}")[0] == 200,
              "metadata with the metadata right")
        check(Http(port, "wrong-token-000000000").json(
            "GET", "/v2")[0] == 401, "an unknown token")
        check(binary_infer(reader, [image], ["MASK"])[0] == 403,
              "inference without the inference right")
        check(binary_infer(runner, [image], ["MASK"])[0] == 200,
              "inference with the inference right")
        check(runner.json("POST", f"/v2/models/{MODEL}/segment", image,
                          {"Content-Type": "image/png"})[0] == 200,
              "the image endpoint with the inference right")
        check(reader.json("POST", f"/v2/repository/models/{MODEL}/unload",
                          b"")[0] == 403, "unload needs the admin right")
    finally:
        server.stop()


def inflight(metrics_port):
    """segserve_inflight_requests from the metrics endpoint."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics",
                                timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("segserve_inflight_requests "):
                return int(float(line.split()[1]))
    return -1


def drain(args, workdir):
    server = SegserveProcess(args.segserve, [
        f"--model_repository={args.model_repository}", "--host=127.0.0.1",
        "--default_model=scenes-sgcpnet", "--grpc_port=0", "--http_port=0",
        "--metrics_port=0", "--cpu_cores=1", "--drain_timeout_s=30"],
        os.path.join(workdir, "drain.log"))
    _, metrics_port = server.wait_ready(timeout_s=120)
    http = Http(ready_http_port(server.log_text()))
    big = png_bytes(np.tile(scene(4), (4, 4, 1)))
    results, threads = [], []

    def send():
        try:
            status, _ = http.json("POST", "/v2/models/scenes-cgrseg-t/segment",
                                  big, {"Content-Type": "image/png"})
            results.append(status)
        except (urllib.error.URLError, http_client.RemoteDisconnected,
                ConnectionResetError) as e:
            # Sent as the process went: never accepted (the in-flight count
            # below says how many were).
            results.append("not accepted")

    for _ in range(12):
        threads.append(threading.Thread(target=send))
        threads[-1].start()
    accepted = 0
    for _ in range(200):
        accepted = inflight(metrics_port)
        if accepted >= 4:
            break
        time.sleep(0.005)
    server.process.send_signal(signal.SIGTERM)
    ready = None
    for _ in range(50):
        try:
            ready = http.call("GET", "/v2/health/ready", timeout=5)[0]
        except OSError:
            break
        if ready == 503:
            break
        time.sleep(0.05)
    for thread in threads:
        thread.join(timeout=120)
    code = server.process.wait(timeout=60)
    check(ready == 503, f"readiness is 503 during the drain: {ready}")
    # Every request in flight at SIGTERM is answered 200; the others get
    # 200, 503 (refused by the drain) or never reached the server.
    check(accepted >= 1 and results.count(200) >= accepted and
          len(results) == 12 and
          all(r in (200, 503, "not accepted") for r in results),
          f"every accepted request is answered during the drain: "
          f"{accepted} in flight at SIGTERM, answers {results}")
    check(code == 0, f"segserve drained and exited {code}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--segserve", required=True)
    parser.add_argument("--proto_root", required=True)
    parser.add_argument("--model_repository", required=True)
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="segserve-rest-")
    generate_stubs(args.proto_root, workdir)
    import grpc
    from segserve.v1 import segmentation_pb2 as v1
    from segserve.v1 import segmentation_pb2_grpc as v1_grpc

    endpoints_and_masks(args, workdir, v1, v1_grpc, grpc)
    tokens(args, workdir)
    drain(args, workdir)
    if failures:
        print(f"rest test: {len(failures)} failure(s)")
        sys.exit(1)
    print("rest test: ok")


if __name__ == "__main__":
    main()
