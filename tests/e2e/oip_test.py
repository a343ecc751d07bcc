#!/usr/bin/python3
"""The Open Inference Protocol against the real segserve and its shipped
default model, through a client generated at test time from
proto/inference/open_inference.proto by protoc and Debian's Python grpcio.

Checks every implemented RPC, both content forms (contents and
raw_input_contents / raw_output_contents), batched requests, the optional
outputs and parameters, that a ModelInfer mask equals the Segment mask for
the same image pixel for pixel, and malformed requests with their exact
codes and words; the server serves afterwards.
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", ".."))
from tests.segserve_process import SegserveProcess, repository_models  # noqa: E402
from tests.test_images import png_bytes  # noqa: E402

MODEL = "scenes-sgcpnet"
failures = []


def check(condition, what):
    print(("ok   " if condition else "FAIL ") + what)
    if not condition:
        failures.append(what)


def generate_stubs(proto_root, out_dir):
    subprocess.run([
        "protoc", f"--proto_path={proto_root}", f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        "--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin",
        os.path.join(proto_root, "inference/open_inference.proto"),
        os.path.join(proto_root, "segserve/v1/segmentation.proto"),
    ], check=True)
    sys.path.insert(0, out_dir)


def scene(seed, height=200, width=240):
    """An RGB image with a flat disk and rectangle on a noisy background."""
    rng = np.random.default_rng(seed)
    image = rng.integers(90, 140, (height, width, 3), dtype=np.uint8)
    y, x = np.mgrid[:height, :width]
    image[(y - 80) ** 2 + (x - 70 - 10 * seed) ** 2 < 40 ** 2] = (220, 40, 40)
    image[100:170, 140:220] = (40, 200, 60)
    return image


def rle_decode(data, pixels):
    """segserve's RLE: (class_id, run_length) varint pairs."""
    values, number, shift = [], 0, 0
    for byte in data:
        number |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            values.append(number)
            number, shift = 0, 0
    out = np.concatenate([np.full(run, label, np.uint8)
                          for label, run in zip(values[::2], values[1::2])])
    return out if out.size == pixels else None


def raw_bytes_elements(elements):
    return b"".join(struct.pack("<I", len(e)) + e for e in elements)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--segserve", required=True)
    parser.add_argument("--proto_root", required=True)
    parser.add_argument("--model_repository", required=True)
    parser.add_argument("--segload", required=True)
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="segserve-oip-")
    generate_stubs(args.proto_root, workdir)
    import grpc
    from inference import open_inference_pb2 as oip
    from inference import open_inference_pb2_grpc as oip_grpc
    from segserve.v1 import segmentation_pb2 as v1
    from segserve.v1 import segmentation_pb2_grpc as v1_grpc

    server = SegserveProcess(args.segserve, [
        f"--model_repository={args.model_repository}", "--host=127.0.0.1",
        "--default_model=scenes-sgcpnet",
        "--grpc_port=0", "--http_port=-1", "--metrics_port=0"],
        os.path.join(workdir, "segserve.log"))
    port, _ = server.wait_ready(timeout_s=120)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=[
        ("grpc.max_receive_message_length", 64 << 20)])
    stub = oip_grpc.GRPCInferenceServiceStub(channel)
    segment = v1_grpc.SegmentationStub(channel).Segment

    def infer(request):
        return stub.ModelInfer(request, timeout=60)

    def error_of(call, request):
        try:
            call(request, timeout=60)
        except grpc.RpcError as e:
            return e.code(), e.details()
        return grpc.StatusCode.OK, ""

    try:
        # Server and model RPCs.
        check(stub.ServerLive(oip.ServerLiveRequest()).live, "ServerLive")
        check(stub.ServerReady(oip.ServerReadyRequest()).ready, "ServerReady")
        meta = stub.ServerMetadata(oip.ServerMetadataRequest())
        check(meta.name == "segserve" and meta.version != "",
              f"ServerMetadata: {meta.name} {meta.version}")
        check(stub.ModelReady(oip.ModelReadyRequest(name=MODEL)).ready,
              "ModelReady of the default model")
        check(stub.ModelReady(oip.ModelReadyRequest(name=MODEL,
                                                    version="1")).ready,
              "ModelReady of version 1")
        code, _ = error_of(stub.ModelReady, oip.ModelReadyRequest(name="nope"))
        check(code == grpc.StatusCode.NOT_FOUND, "ModelReady of an unknown "
              f"model: {code}")
        model = stub.ModelMetadata(oip.ModelMetadataRequest(name=MODEL))
        check(list(model.versions) == ["1"], f"versions {model.versions}")
        check([(t.name, t.datatype, list(t.shape)) for t in model.inputs] ==
              [("IMAGE", "BYTES", [-1])], f"inputs {model.inputs}")
        outputs = {t.name: (t.datatype, list(t.shape)) for t in model.outputs}
        classes = outputs.get("CLASS_PIXELS", ("", [0, 0]))[1][1]
        check(outputs.get("MASK") == ("UINT8", [-1, -1, -1]) and classes > 1,
              f"outputs {outputs}")
        check(list(meta.extensions) ==
              ["model_configuration", "model_repository", "statistics"],
              f"ServerMetadata lists the extensions: {list(meta.extensions)}")
        config = stub.ModelConfig(oip.ModelConfigRequest(name=MODEL)).config
        mirrors = (config.name == MODEL and config.max_batch_size == 8 and
              [(i.name, i.data_type, list(i.dims)) for i in config.input] ==
              [("IMAGE", oip.TYPE_STRING, [1])] and
              [(o.name, list(o.dims)) for o in config.output] ==
              [("MASK", [-1, -1]), ("CONFIDENCE", [-1, -1]),
               ("CLASS_PIXELS", [classes])] and
              list(config.dynamic_batching.preferred_batch_size) == [4, 8] and
              config.dynamic_batching.default_queue_policy.max_queue_size ==
              256 and config.HasField("dynamic_batching"))
        check(mirrors, "ModelConfig mirrors config.pbtxt" +
              ("" if mirrors else f": {config}"))
        code, _ = error_of(stub.ModelConfig, oip.ModelConfigRequest(
            name=MODEL, version="7"))
        check(code == grpc.StatusCode.NOT_FOUND,
              f"ModelConfig of an unknown version: {code}")
        index = stub.RepositoryIndex(oip.RepositoryIndexRequest(ready=True))
        check([(m.name, m.version, m.state) for m in index.models] ==
              [(name, version, "READY") for name, version
               in repository_models(args.model_repository)],
              f"RepositoryIndex: {index.models}")
        code, words = error_of(stub.RepositoryModelLoad,
                               oip.RepositoryModelLoadRequest(model_name=MODEL))
        check(code == grpc.StatusCode.FAILED_PRECONDITION and
              "control mode is none" in words,
              f"RepositoryModelLoad without explicit mode: {code} {words}")

        # The reference: Segment's RAW masks.
        images = [scene(1), scene(2)]
        height, width = images[0].shape[:2]
        encoded = [png_bytes(image) for image in images]
        reference = []
        for data in encoded:
            answer = segment(v1.SegmentRequest(
                image=v1.Image(encoded=data), mask_encoding=v1.RAW),
                timeout=60)
            reference.append(np.frombuffer(answer.mask.data, np.uint8)
                             .reshape(height, width))
        raw_reference = np.frombuffer(segment(v1.SegmentRequest(
            image=v1.Image(raw=v1.RawImage(
                width=width, height=height, format=v1.RGB8,
                data=images[0].tobytes())),
            mask_encoding=v1.RAW), timeout=60).mask.data,
            np.uint8).reshape(height, width)

        def bytes_input(n, raw):
            tensor = oip.ModelInferRequest.InferInputTensor(
                name="IMAGE", datatype="BYTES", shape=[n])
            request = oip.ModelInferRequest(model_name=MODEL, id="r1")
            if raw:
                request.raw_input_contents.append(
                    raw_bytes_elements(encoded[:n]))
            else:
                tensor.contents.bytes_contents.extend(encoded[:n])
            request.inputs.append(tensor)
            return request

        # One encoded image, raw and as contents.
        answer = infer(bytes_input(1, raw=True))
        mask = answer.outputs[0]
        got = np.frombuffer(answer.raw_output_contents[0], np.uint8)
        check(answer.id == "r1" and answer.model_name == MODEL and
              answer.model_version == "1", "the answer names id, model and "
              "version")
        check(mask.name == "MASK" and mask.datatype == "UINT8" and
              list(mask.shape) == [height, width],
              f"MASK {mask.datatype} {list(mask.shape)}")
        check(np.array_equal(got.reshape(height, width), reference[0]),
              "ModelInfer MASK (raw) equals the Segment mask")
        answer = infer(bytes_input(1, raw=False))
        got = np.array(answer.outputs[0].contents.uint_contents, np.uint8)
        check(not answer.raw_output_contents and
              np.array_equal(got.reshape(height, width), reference[0]),
              "ModelInfer MASK (contents) equals the Segment mask")

        # RGB pixels, raw and as contents.
        request = oip.ModelInferRequest(model_name=MODEL)
        request.inputs.append(oip.ModelInferRequest.InferInputTensor(
            name="IMAGE", datatype="UINT8", shape=[height, width, 3]))
        request.raw_input_contents.append(images[0].tobytes())
        got = np.frombuffer(infer(request).raw_output_contents[0], np.uint8)
        check(np.array_equal(got.reshape(height, width), raw_reference),
              "UINT8 [H, W, 3] raw: MASK equals Segment's for raw pixels")
        request = oip.ModelInferRequest(model_name=MODEL)
        tensor = request.inputs.add(name="IMAGE", datatype="UINT8",
                                    shape=[height, width, 3])
        tensor.contents.uint_contents.extend(images[0].reshape(-1).tolist())
        got = np.array(infer(request).outputs[0].contents.uint_contents,
                       np.uint8)
        check(np.array_equal(got.reshape(height, width), raw_reference),
              "UINT8 [H, W, 3] contents: the same mask")

        # A batch of two, with every output.
        request = bytes_input(2, raw=True)
        for name in ("MASK", "CONFIDENCE", "CLASS_PIXELS"):
            request.outputs.add(name=name)
        answer = infer(request)
        shapes = {o.name: (o.datatype, list(o.shape)) for o in answer.outputs}
        check(shapes == {"MASK": ("UINT8", [2, height, width]),
                         "CONFIDENCE": ("UINT8", [2, height, width]),
                         "CLASS_PIXELS": ("INT64", [2, classes])},
              f"batched shapes {shapes}")
        masks = np.frombuffer(answer.raw_output_contents[0], np.uint8)
        masks = masks.reshape(2, height, width)
        check(all(np.array_equal(masks[i], reference[i]) for i in range(2)),
              "each batched mask equals its Segment mask")
        counts = np.frombuffer(answer.raw_output_contents[2], "<i8")
        counts = counts.reshape(2, classes)
        expected = [np.bincount(reference[i].reshape(-1), minlength=classes)
                    for i in range(2)]
        check(all(np.array_equal(counts[i], expected[i]) for i in range(2)),
              "CLASS_PIXELS counts the mask's pixels per class")

        # Parameters: an encoded mask and a priority.
        request = bytes_input(1, raw=True)
        request.parameters["mask_encoding"].string_param = "rle"
        request.parameters["priority"].int64_param = 1
        answer = infer(request)
        element = answer.raw_output_contents[0]
        length = struct.unpack("<I", element[:4])[0]
        decoded = rle_decode(element[4:4 + length], height * width)
        check(answer.outputs[0].datatype == "BYTES" and
              len(element) == 4 + length and decoded is not None and
              np.array_equal(decoded.reshape(height, width), reference[0]),
              "mask_encoding rle: MASK is BYTES holding the mask's RLE")

        # Malformed requests: each its code and the words of its message.
        def bad(request, code, words, what):
            got_code, details = error_of(stub.ModelInfer, request)
            check(got_code == code and all(w in details for w in words),
                  f"{what}: {got_code} {details!r}")

        request = bytes_input(1, raw=True)
        request.inputs[0].name = "INPUT__0"
        bad(request, grpc.StatusCode.INVALID_ARGUMENT, ["one input, IMAGE"],
            "a wrong input name")
        request = bytes_input(1, raw=True)
        request.inputs[0].datatype = "FP32"
        bad(request, grpc.StatusCode.INVALID_ARGUMENT, ["FP32", "BYTES [N]"],
            "a wrong datatype")
        request = bytes_input(1, raw=True)
        request.raw_input_contents[0] = struct.pack("<I", 1000) + b"abc"
        bad(request, grpc.StatusCode.INVALID_ARGUMENT, ["says 1000 bytes"],
            "a length prefix past the end")
        request = bytes_input(1, raw=True)
        request.raw_input_contents[0] = b"\x01\x00"
        bad(request, grpc.StatusCode.INVALID_ARGUMENT, ["4-byte length"],
            "a cut length prefix")
        request = bytes_input(2, raw=True)
        request.inputs[0].shape[0] = 3
        bad(request, grpc.StatusCode.INVALID_ARGUMENT, ["holds 2", "says 3"],
            "fewer elements than the shape")
        request = oip.ModelInferRequest(model_name=MODEL)
        request.inputs.add(name="IMAGE", datatype="BYTES", shape=[9])
        request.raw_input_contents.append(raw_bytes_elements(encoded[:1] * 9))
        bad(request, grpc.StatusCode.INVALID_ARGUMENT, ["9 images", "at most"],
            "more images than max_batch_size")
        request = bytes_input(1, raw=True)
        request.parameters["colour"].string_param = "red"
        bad(request, grpc.StatusCode.INVALID_ARGUMENT,
            ["unknown parameter", "mask_encoding"], "an unknown parameter")
        request = bytes_input(1, raw=True)
        request.parameters["mask_encoding"].string_param = "jpeg"
        bad(request, grpc.StatusCode.INVALID_ARGUMENT, ["\"raw\"", "\"rle\""],
            "an unknown mask encoding")
        request = bytes_input(1, raw=True)
        request.outputs.add(name="LOGITS")
        bad(request, grpc.StatusCode.INVALID_ARGUMENT,
            ["unknown output", "CLASS_PIXELS"], "an unknown output")
        request = bytes_input(1, raw=False)
        request.raw_input_contents.append(raw_bytes_elements(encoded[:1]))
        bad(request, grpc.StatusCode.INVALID_ARGUMENT, ["send one"],
            "contents and raw_input_contents both")
        request = oip.ModelInferRequest(model_name=MODEL)
        tensor = request.inputs.add(name="IMAGE", datatype="UINT8",
                                    shape=[1, 1, 3])
        tensor.contents.uint_contents.extend([1, 2, 300])
        bad(request, grpc.StatusCode.INVALID_ARGUMENT, ["300", "0..255"],
            "a UINT8 element above 255")
        request = oip.ModelInferRequest(model_name=MODEL)
        request.inputs.add(name="IMAGE", datatype="UINT8", shape=[4, 4, 3])
        request.raw_input_contents.append(b"\x00" * 47)
        bad(request, grpc.StatusCode.INVALID_ARGUMENT, ["47 bytes", "needs 48"],
            "UINT8 raw data of the wrong size")
        request = bytes_input(1, raw=True)
        request.model_name = "nope"
        bad(request, grpc.StatusCode.NOT_FOUND, ["nope"], "an unknown model")
        request = bytes_input(1, raw=True)
        request.raw_input_contents[0] = raw_bytes_elements([b"not an image"])
        bad(request, grpc.StatusCode.INVALID_ARGUMENT, ["JPEG"],
            "bytes that are no image (Segment's own message)")

        answer = infer(bytes_input(1, raw=True))
        got = np.frombuffer(answer.raw_output_contents[0], np.uint8)
        check(np.array_equal(got.reshape(height, width), reference[0]),
              "the server still serves after the malformed requests")

        # Statistics of what ran so far: every batch counted by size, and
        # more successes than the calls that failed on purpose.
        stats = stub.ModelStatistics(oip.ModelStatisticsRequest(
            name=MODEL)).model_stats
        check(len(stats) == 1 and stats[0].version == "1",
              f"ModelStatistics lists version 1: {stats}")
        s = stats[0]
        by_size = sum(b.compute_infer.count for b in s.batch_stats)
        items = sum(b.batch_size * b.compute_infer.count
                    for b in s.batch_stats)
        check(s.execution_count == by_size > 0 and
              s.inference_count == items >= s.inference_stats.success.count
              > 5 and s.inference_stats.fail.count > 0 and
              s.inference_stats.compute_infer.count ==
              s.inference_stats.success.count and
              0 < s.inference_stats.queue.ns < s.inference_stats.success.ns
              and s.last_inference > 1.7e12,
              f"ModelStatistics adds up: {s}")
        code, _ = error_of(stub.ModelStatistics, oip.ModelStatisticsRequest(
            name=MODEL, version="9"))
        check(code == grpc.StatusCode.NOT_FOUND,
              f"ModelStatistics of an unknown version: {code}")

        # segload through the protocol: its masks decode at the image's size
        # (else it counts DATA_LOSS).
        for flags in (["--raw", "--mask_encoding=rle"],
                      ["--send=jpeg", "--mask_encoding=png"]):
            out = os.path.join(workdir, "segload.json")
            done = subprocess.run([
                args.segload, f"--target=127.0.0.1:{port}", "--protocol=oip",
                "--sizes=320x240", "--concurrency=2", "--requests=12",
                "--warmup_requests=2", "--deadline_ms=60000", f"--json={out}",
                *flags],
                capture_output=True, text=True)
            step = (json.load(open(out))["steps"][0]
                    if done.returncode == 0 else {"ok": 0, "errors": done.stderr})
            check(step["ok"] == 12 and not step["errors"],
                  f"segload --protocol=oip {' '.join(flags)}: {step['ok']} ok, "
                  f"errors {step['errors']}")
    finally:
        code = server.stop()
    check(code == 0, f"segserve exited {code}")
    print(f"oip test: {'FAILED' if failures else 'ok'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
