#!/usr/bin/python3
"""The Python SDK (client/python) against the real segserve.

Builds the package into a temporary directory with its setup.py (the gRPC
stubs generated from proto/ as a user's build makes them), imports it from
there, and checks against segserve serving the shipped model repository on
127.0.0.1:
  - every method: segment, segment_stream, list_models, get_model, health;
  - PNG, RAW and RLE masks decode to the same label map, equal pixel for
    pixel to the mask segclient (the C++ SDK) writes for the same image, as
    are the confidence and the overlay it draws; raw RGB and gray arrays;
    confidence only when asked; class stats that sum to W*H; timing;
  - a stream answers in frame order, and a bad frame in its middle ends it
    with SegserveError(INVALID_ARGUMENT) after the results of the frames
    before it;
  - errors: unknown model or version (NOT_FOUND), unknown health service,
    deadlines, priorities;
  - mTLS with certificates made by openssl at test time and bearer tokens:
    a wrong or missing token is UNAUTHENTICATED, a token without the right
    PERMISSION_DENIED, health stays open, plaintext and no client
    certificate are refused;
  - against an in-process fake server: retries (UNAVAILABLE retried as
    often as asked, RESOURCE_EXHAUSTED not), the token header, every
    request field, and a stream answered short (INTERNAL).
Prints 'python sdk test: ok' when everything passed.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent import futures

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", ".."))
from tests.segserve_process import SegserveProcess  # noqa: E402
from tests.test_images import png_bytes, scene  # noqa: E402

MODEL = "scenes-sgcpnet"
GOOD_TOKEN = "sdk-token-0123456789abcdef"
METADATA_TOKEN = "sdk-metadata-only-0123456789"
failures = []


def check(condition, what):
    print(("ok   " if condition else "FAIL ") + what)
    if not condition:
        failures.append(what)


def expect_error(call, code, what, words=""):
    """Runs `call`; checks that it raises SegserveError with `code` (and
    `words` in its message). Returns the error."""
    import segserve
    try:
        call()
    except segserve.SegserveError as error:
        check(error.code == code and words in error.message,
              f"{what}: {error.code.name} {error.message[:160]!r}")
        return error
    except Exception as error:  # noqa: BLE001 - reported as a failure.
        check(False, f"{what}: raised {type(error).__name__}: {error}")
        return None
    check(False, f"{what}: no error, expected {code.name}")
    return None


def build_sdk(sdk_dir, tmp):
    """Builds the package as a user would, outside the source tree; returns
    the directory to import it from."""
    lib = os.path.join(tmp, "sdk-lib")
    egg = os.path.join(tmp, "sdk-egg")
    os.makedirs(egg)
    run = subprocess.run(
        [sys.executable, os.path.join(sdk_dir, "setup.py"), "-q", "egg_info",
         "--egg-base", egg, "build_py", "--build-lib", lib],
        capture_output=True, text=True)
    check(run.returncode == 0, "setup.py build_py builds the package"
          + ("" if run.returncode == 0 else ": " + run.stderr[-2000:]))
    stubs = os.path.join(lib, "segserve", "_proto")
    check(os.path.isfile(os.path.join(stubs, "segmentation_pb2.py")) and
          os.path.isfile(os.path.join(stubs, "segmentation_pb2_grpc.py")),
          "the build holds the generated stubs")
    check(not any(name.endswith(".py") and "_pb2" in name for name in
                  os.listdir(os.path.join(sdk_dir, "segserve", "_proto"))),
          "no stubs were generated into the source tree")
    return lib


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True,
                   capture_output=True)


def make_pki(dir):
    """A CA, a server certificate for 127.0.0.1 and segserve.test, and a
    client certificate, as tls_test.py makes them."""
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key", "-out",
            "ca.pem", "-days", "30", "-subj", "/CN=segserve sdk test ca",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext",
            "keyUsage=critical,keyCertSign,cRLSign", cwd=dir)
    for name, usage in (("server", "serverAuth"), ("client", "clientAuth")):
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", f"/CN=segserve sdk test {name}", cwd=dir)
        with open(os.path.join(dir, f"{name}.ext"), "w") as f:
            f.write("basicConstraints=CA:FALSE\n"
                    "keyUsage=critical,digitalSignature\n"
                    f"extendedKeyUsage={usage}\n"
                    "subjectAltName=IP:127.0.0.1,DNS:segserve.test\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem",
                "-CAkey", "ca.key", "-CAcreateserial", "-days", "30",
                "-extfile", f"{name}.ext", "-out", f"{name}.pem", cwd=dir)
    with open(os.path.join(dir, "tokens.txt"), "w") as f:
        f.write(f"{GOOD_TOKEN} inference,metadata\n"
                f"{METADATA_TOKEN} metadata\n")


def start_servers(args, tmp):
    """The plaintext and the mTLS + token servers, started together so that
    their models load in parallel."""
    common = [f"--model_repository={args.model_repository}",
              "--host=127.0.0.1", f"--default_model={MODEL}",
              "--grpc_port=0", "--http_port=-1", "--metrics_port=-1",
              "--cpu_cores=1", "--preprocess_threads=1"]
    p = lambda name: os.path.join(tmp, name)  # noqa: E731
    plain = SegserveProcess(args.segserve, common, p("segserve-plain.log"))
    secure = SegserveProcess(args.segserve, common + [
        f"--tls_cert_file={p('server.pem')}",
        f"--tls_key_file={p('server.key')}",
        f"--tls_client_ca_file={p('ca.pem')}",
        f"--auth_tokens_file={p('tokens.txt')}"], p("segserve-secure.log"))
    return plain, secure


def run_segclient(args, port, image_path, tmp):
    """segclient's mask, confidence and overlay PNGs for `image_path`."""
    out = {k: os.path.join(tmp, f"segclient-{k}.png")
           for k in ("mask", "confidence", "overlay")}
    run = subprocess.run(
        [args.segclient, f"--target=127.0.0.1:{port}", f"--image={image_path}",
         f"--mask={out['mask']}", f"--confidence={out['confidence']}",
         f"--overlay={out['overlay']}", "--alpha=0.5"],
        capture_output=True, text=True, timeout=120)
    check(run.returncode == 0, "segclient segments the image"
          + ("" if run.returncode == 0 else ": " + run.stdout + run.stderr))
    if run.returncode != 0:
        return None
    with_files = {}
    import segserve
    for key, path in out.items():
        with open(path, "rb") as f:
            with_files[key] = segserve.decode_png(f.read())
    return with_files


def check_plain_server(args, port, tmp):
    """Every method against the plaintext server; returns the mask of the
    reference image for the TLS checks."""
    import grpc
    import segserve
    code = grpc.StatusCode
    target = f"127.0.0.1:{port}"
    image = scene(1, 120, 160)
    image_path = os.path.join(tmp, "scene.png")
    with open(image_path, "wb") as f:
        f.write(png_bytes(image))
    reference = run_segclient(args, port, image_path, tmp)

    with segserve.Client(target, retries=2, timeout=60) as client:
        # Health: every name the server registers, and one it does not.
        for service in segserve.HEALTH_SERVICES:
            check(client.health(service) == segserve.HealthStatus.SERVING,
                  f"health({service!r}) is SERVING")
        expect_error(lambda: client.health("no-such-service"), code.NOT_FOUND,
                     "health of an unknown service", "no health service")

        # Models.
        models = client.list_models()
        names = [m.name for m in models]
        check(MODEL in names, f"list_models lists {MODEL}: {names}")
        default = client.get_model()
        check(default.name == MODEL and default.is_default and
              default.state == "READY" and default.version == "1" and
              default.architecture == "sgcpnet" and
              len(default.class_names) == 6 and
              default.input_height == 512 and
              [v.state for v in default.versions] == ["READY"],
              f"get_model() describes the default model: {default}")
        check(client.get_model(MODEL, "1").name == MODEL,
              "get_model(name, version)")
        expect_error(lambda: client.get_model("nope"), code.NOT_FOUND,
                     "get_model of an unknown model")
        expect_error(lambda: client.get_model(MODEL, "99"), code.NOT_FOUND,
                     "get_model of an unknown version")

        # One image in every encoding, from a path and from bytes.
        results = {
            "png": client.segment(image_path, request_id="sdk-1"),
            "raw": client.segment(png_bytes(image), mask_encoding="raw"),
            "rle": client.segment(image_path, mask_encoding="rle",
                                  model=MODEL, version="1"),
        }
        mask = results["png"].mask
        check(mask.shape == (120, 160) and mask.dtype == np.uint8,
              f"the mask has the image's size: {mask.shape} {mask.dtype}")
        for encoding in ("raw", "rle"):
            check(np.array_equal(results[encoding].mask, mask),
                  f"the {encoding} mask equals the png mask")
        check(len(np.unique(mask)) >= 2,
              f"the mask finds shapes: classes {np.unique(mask).tolist()}")
        if reference is not None:
            check(np.array_equal(reference["mask"], mask),
                  "the mask equals segclient's, pixel for pixel")
        first = results["png"]
        check(first.model == MODEL and first.version == "1" and
              first.request_id == "sdk-1",
              f"model, version and request id: {first.model} "
              f"{first.version} {first.request_id}")
        check(first.confidence is None, "no confidence unless asked for")
        timing = first.timing
        check(timing.batch_size >= 1 and timing.tiles == 1 and
              timing.inference_us > 0 and timing.total_us >= timing.queue_us,
              f"timing: {timing}")
        for encoding, result in results.items():
            stats = result.class_stats
            ids, counts = np.unique(result.mask, return_counts=True)
            check(sum(s.pixels for s in stats) == 160 * 120 and
                  [s.class_id for s in stats] == ids.tolist() and
                  [s.pixels for s in stats] == counts.tolist() and
                  all(s.name == default.class_names[s.class_id]
                      for s in stats),
                  f"{encoding}: class stats sum to W*H and match the mask")

        with_confidence = client.segment(image, confidence=True)
        conf = with_confidence.confidence
        check(conf is not None and conf.shape == (120, 160) and
              conf.dtype == np.uint8 and conf.max() > 0,
              "confidence when asked for, at the image's size")
        check(np.array_equal(with_confidence.mask, mask),
              "a raw RGB array gives the same mask as its PNG")
        if reference is not None and conf is not None:
            check(np.array_equal(reference["confidence"], conf),
                  "the confidence equals segclient's, pixel for pixel")
            drawn = segserve.overlay(image_path, mask, alpha=0.5)
            check(np.array_equal(reference["overlay"], drawn) and
                  np.array_equal(segserve.overlay(image, mask), drawn),
                  "overlay() equals segclient's overlay, pixel for pixel")
        gray = client.segment(image.mean(axis=2).astype(np.uint8),
                              mask_encoding="rle")
        check(gray.mask.shape == (120, 160), "a gray array (GRAY8)")
        odd = client.segment(scene(2, 131, 97), mask_encoding="raw",
                             priority=1)
        check(odd.mask.shape == (131, 97), "an odd size, priority 1")

        expect_error(lambda: client.segment(image, model="nope"),
                     code.NOT_FOUND, "segment with an unknown model")
        expect_error(lambda: client.segment(image, priority=7),
                     code.INVALID_ARGUMENT, "a priority past the model's")
        expect_error(lambda: client.segment(b"not an image"),
                     code.INVALID_ARGUMENT, "undecodable bytes")
        # The deadline travels with the call: it expires, or the server's
        # deadline-aware admission refuses the call at once, saying so.
        try:
            client.segment(image, timeout=0.0005)
            check(False, "a deadline too short: no error")
        except segserve.SegserveError as error:
            check(error.code == code.DEADLINE_EXCEEDED or
                  (error.code == code.RESOURCE_EXHAUSTED and
                   "deadline" in error.message),
                  f"a deadline too short: {error}")

        # Streams: results in frame order, equal to single calls (up to the
        # odd pixel: frames of one stream may share a batch, and a batch's
        # arithmetic may differ from a lone image's in the last bits).
        frames = [scene(3, 120, 160), scene(4, 90, 200), scene(5, 131, 97)]
        singles = [client.segment(f).mask for f in frames]
        streamed = list(client.segment_stream(iter(frames),
                                              mask_encoding="rle"))
        check([r.mask.shape for r in streamed] == [m.shape for m in singles],
              "segment_stream: one result per frame, in order")
        check(all(np.mean(r.mask == m) > 0.99
                  for r, m in zip(streamed, singles)),
              "segment_stream: masks equal the single calls'")

        delivered = []

        def bad_middle_frame():
            for result in client.segment_stream(
                    [frames[0], b"", frames[2]], confidence=True):
                delivered.append(result)
        expect_error(bad_middle_frame, code.INVALID_ARGUMENT,
                     "a stream with an empty frame in the middle",
                     "image.encoded is empty")
        check(len(delivered) == 1 and delivered[0].mask.shape == (120, 160)
              and delivered[0].confidence is not None,
              f"the frame before the bad one was delivered "
              f"({len(delivered)} results)")

        delivered.clear()

        def camera():
            yield frames[0]
            yield frames[1]
            raise RuntimeError("camera unplugged")
        try:
            for result in client.segment_stream(camera()):
                delivered.append(result)
            check(False, "an exception of the frames reaches the caller")
        except RuntimeError as error:
            check(str(error) == "camera unplugged" and len(delivered) == 2,
                  f"an exception of the frames reaches the caller after the "
                  f"{len(delivered)} results before it")
        stream = client.segment_stream(frames)
        check(next(stream).mask.shape == (120, 160),
              "a stream can be left early")
        stream.close()
        check(client.health() == segserve.HealthStatus.SERVING,
              "the client still works after leaving a stream")
    return mask


def check_secure_server(port, tmp, plain_mask):
    import grpc
    import segserve
    code = grpc.StatusCode
    p = lambda name: os.path.join(tmp, name)  # noqa: E731
    target = f"127.0.0.1:{port}"
    mtls = segserve.TlsConfig(ca=p("ca.pem"), cert=p("client.pem"),
                              key=p("client.key"))
    image_path = p("scene.png")
    with segserve.Client(target, tls=mtls, token=GOOD_TOKEN,
                         timeout=60) as client:
        check(client.health() == segserve.HealthStatus.SERVING,
              "mTLS + token: health")
        result = client.segment(image_path, mask_encoding="rle")
        check(np.array_equal(result.mask, plain_mask),
              "mTLS + token: segment gives the plaintext server's mask")
        check([m.name for m in client.list_models()].count(MODEL) == 1 and
              client.get_model().name == MODEL,
              "mTLS + token: list_models and get_model")
        check(len(list(client.segment_stream([image_path, image_path]))) == 2,
              "mTLS + token: segment_stream")
    named = segserve.TlsConfig(ca=p("ca.pem"), cert=p("client.pem"),
                               key=p("client.key"),
                               server_name="segserve.test")
    with segserve.Client(target, tls=named, token=GOOD_TOKEN) as client:
        check(client.segment(image_path).mask.shape == (120, 160),
              "TlsConfig.server_name checks the certificate's DNS name")
    with segserve.Client(target, tls=mtls, token="sdk-wrong-token-0123456",
                         retries=0, timeout=20) as client:
        expect_error(lambda: client.segment(image_path), code.UNAUTHENTICATED,
                     "a wrong token", "not one this server knows")
        expect_error(lambda: list(client.segment_stream([image_path])),
                     code.UNAUTHENTICATED, "a wrong token on a stream")
        check(client.health() == segserve.HealthStatus.SERVING,
              "health stays open with a wrong token")
    with segserve.Client(target, tls=mtls, retries=0, timeout=20) as client:
        expect_error(lambda: client.list_models(), code.UNAUTHENTICATED,
                     "no token", "needs a bearer token")
    with segserve.Client(target, tls=mtls, token=METADATA_TOKEN, retries=0,
                         timeout=20) as client:
        expect_error(lambda: client.segment(image_path),
                     code.PERMISSION_DENIED, "a token without the right",
                     "inference")
        check(client.get_model().name == MODEL,
              "a metadata token may read the models")
    refused = [
        ("plaintext to the TLS port", None),
        ("TLS without a client certificate", segserve.TlsConfig(
            ca=p("ca.pem"))),
        ("TLS trusting only the system's CAs", True),
    ]
    for what, tls in refused:
        with segserve.Client(target, tls=tls, token=GOOD_TOKEN, retries=0,
                             timeout=20) as client:
            expect_error(lambda: client.get_model(), code.UNAVAILABLE, what)


def check_fake_server():
    """Retries, headers, request fields and a short stream, against an
    in-process server that fails or answers as told."""
    import grpc
    import segserve
    from segserve._proto import segmentation_pb2 as pb
    from segserve._proto import segmentation_pb2_grpc as pb_grpc
    code = grpc.StatusCode

    class Fake(pb_grpc.SegmentationServicer):
        def __init__(self):
            self.fail_with, self.failures = None, 0
            self.calls, self.requests, self.metadata = 0, [], []

        def Segment(self, request, context):
            self.calls += 1
            self.requests.append(request)
            self.metadata.append(dict(context.invocation_metadata()))
            if self.calls <= self.failures:
                context.abort(self.fail_with, "told to fail")
            return pb.SegmentResponse(
                model="fake", model_version="7", request_id=request.request_id,
                mask=pb.Mask(width=3, height=1, encoding=pb.RAW,
                             data=b"\x00\x02\x02"),
                class_stats=[pb.ClassStat(class_id=0, pixels=1),
                             pb.ClassStat(class_id=2, pixels=2)])

        def SegmentStream(self, request_iterator, context):
            for index, request in enumerate(request_iterator):
                if index == 1:
                    return  # Answers only the first frame.
                yield self.Segment(request, context)

    fake = Fake()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb_grpc.add_SegmentationServicer_to_server(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    target = f"127.0.0.1:{port}"
    try:
        def attempts(retries, fail_with, failures):
            fake.calls, fake.fail_with, fake.failures = 0, fail_with, failures
            with segserve.Client(target, retries=retries, timeout=20,
                                 token="t0ken") as client:
                try:
                    client.segment(b"x")
                    return "OK", fake.calls
                except segserve.SegserveError as error:
                    return error.code.name, fake.calls

        check(attempts(2, code.UNAVAILABLE, 2) == ("OK", 3),
              "retries=2: two UNAVAILABLE answers are retried")
        check(attempts(1, code.UNAVAILABLE, 2) == ("UNAVAILABLE", 2),
              "retries=1: the second UNAVAILABLE is returned")
        check(attempts(0, code.UNAVAILABLE, 1) == ("UNAVAILABLE", 1),
              "retries=0: no retry")
        check(attempts(2, code.RESOURCE_EXHAUSTED, 1) ==
              ("RESOURCE_EXHAUSTED", 1), "RESOURCE_EXHAUSTED is not retried")
        check(fake.metadata[-1].get("authorization") == "Bearer t0ken",
              "the token travels as 'authorization: Bearer <token>'")
        fake.failures = 0
        with segserve.Client(target) as client:
            result = client.segment(scene(1, 4, 5), model="m", version="3",
                                    mask_encoding="rle", confidence=True,
                                    priority=1, request_id="r-1")
            request = fake.requests[-1]
            check(request.model == "m" and request.model_version == "3" and
                  request.mask_encoding == pb.RLE and
                  request.include_confidence and request.priority == 1 and
                  request.request_id == "r-1" and
                  request.image.raw.format == pb.RGB8 and
                  request.image.raw.width == 5 and
                  request.image.raw.height == 4 and
                  request.image.raw.data == scene(1, 4, 5).tobytes(),
                  "every request field is sent")
            check("authorization" not in fake.metadata[-1],
                  "no authorization header without a token")
            check(result.mask.tolist() == [[0, 2, 2]] and
                  result.version == "7" and result.request_id == "r-1",
                  "the response is decoded")
            expect_error(lambda: list(client.segment_stream([b"a", b"b"])),
                         code.INTERNAL, "a stream answered short",
                         "1 responses for 2 requests")
        with segserve.Client("127.0.0.1:1", retries=1, timeout=5) as client:
            expect_error(client.health, code.UNAVAILABLE,
                         "an unreachable server")
            expect_error(lambda: client.wait_for_connected(0.2),
                         code.UNAVAILABLE, "wait_for_connected times out")
    finally:
        server.stop(0)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser()
    parser.add_argument("--segserve", required=True)
    parser.add_argument("--segclient", required=True)
    parser.add_argument("--model_repository", required=True)
    parser.add_argument("--sdk_dir", default=os.path.join(
        here, "..", "..", "client", "python"))
    args = parser.parse_args()
    started = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="segserve-python-sdk-")
    make_pki(tmp)
    plain, secure = start_servers(args, tmp)
    try:
        sys.path.insert(0, build_sdk(os.path.abspath(args.sdk_dir), tmp))
        import segserve
        check(segserve.__file__.startswith(tmp),
              f"segserve is imported from the build: {segserve.__file__}")
        check_fake_server()
        plain_port, _ = plain.wait_ready(timeout_s=180)
        secure_port, _ = secure.wait_ready(timeout_s=180)
        print(f"servers ready after {time.monotonic() - started:.1f} s")
        mask = check_plain_server(args, plain_port, tmp)
        check_secure_server(secure_port, tmp, mask)
    finally:
        for name, server in (("plaintext", plain), ("mTLS", secure)):
            code = server.stop()
            check(code == 0, f"the {name} server exits 0 on SIGTERM "
                  f"(exit {code})")
        if failures:
            for server in (plain, secure):
                print(f"--- {server.log_path} ---\n"
                      + server.log_text()[-3000:])
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"took {time.monotonic() - started:.1f} s")
    verdict = f"FAILED {len(failures)}" if failures else "ok"
    print(f"python sdk test: {verdict}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
