"""Model versions change under load, and model control by RPC.

Poll mode: segload sends without retries while a copy of the shipped model
gains a version 2, gets a changed config, and loses version 2 again (so
that version 1 comes back). No request may fail, and a watcher that asks
GetModel and ModelReady every 50 ms must always see a READY version, and
only the states of the contract.

Explicit mode: a model loads and unloads on RepositoryModelLoad/Unload,
with a config override, and with the admin right when tokens exist.
"""
import argparse
import faulthandler
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
from tests.e2e.oip_test import generate_stubs  # noqa: E402
from tests.segserve_process import SegserveProcess  # noqa: E402

MODEL = "scenes-sgcpnet"
STATES = {"LOADING", "READY", "UNLOADING", "UNAVAILABLE"}
failures = []


def check(condition, what):
    print(("ok   " if condition else "FAIL ") + what, flush=True)
    if not condition:
        failures.append(what)


def wait_for(condition, timeout_s=120):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def copy_model(source_repository, root):
    shutil.copytree(os.path.join(source_repository, MODEL),
                    os.path.join(root, MODEL))
    return os.path.join(root, MODEL)


def poll_mode(args, workdir, grpc, oip, oip_grpc, v1, v1_grpc):
    root = os.path.join(workdir, "poll")
    model_dir = copy_model(args.model_repository, root)
    server = SegserveProcess(args.segserve, [
        f"--model_repository={root}", "--host=127.0.0.1", "--grpc_port=0", "--http_port=-1",
        "--metrics_port=0", "--model_control_mode=poll",
        "--repository_poll_s=1"], os.path.join(workdir, "poll.log"))
    port, _ = server.wait_ready(timeout_s=120)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    segmentation = v1_grpc.SegmentationStub(channel)
    inference = oip_grpc.GRPCInferenceServiceStub(channel)

    seen = []  # (versions and states) of every GetModel sample
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            info = segmentation.GetModel(v1.GetModelRequest(name=MODEL),
                                         timeout=10)
            states = {v.version: v1.ModelState.Name(v.state)
                      for v in info.versions}
            ready = inference.ModelReady(
                oip.ModelReadyRequest(name=MODEL), timeout=10).ready
            seen.append((states, ready))
            time.sleep(0.05)

    out = os.path.join(workdir, "segload.json")
    load = subprocess.Popen([
        args.segload, f"--target=127.0.0.1:{port}", "--sizes=320x240",
        "--concurrency=4", "--duration_s=40", "--warmup_requests=4",
        "--deadline_ms=60000", "--retry_max_attempts=1", f"--json={out}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        time.sleep(5)
        shutil.copytree(os.path.join(model_dir, "1"),
                        os.path.join(model_dir, "2"))
        def version_ready(version):
            try:
                return inference.ModelReady(oip.ModelReadyRequest(
                    name=MODEL, version=version), timeout=10).ready
            except grpc.RpcError:  # NOT_FOUND until a poll finds it
                return False
        check(wait_for(lambda: version_ready("2")),
              "version 2 became ready after it was copied in")
        check(wait_for(lambda: seen and "1" not in [
            v for v, s in seen[-1][0].items() if s == "READY"]),
            "version 1 left service (latest 1)")
        config_path = os.path.join(model_dir, "config.pbtxt")
        text = open(config_path).read()
        open(config_path, "w").write(
            text.replace("max_queue_delay_us: 2000",
                         "max_queue_delay_us: 3000"))

        def delay():
            config = inference.ModelConfig(
                oip.ModelConfigRequest(name=MODEL)).config
            return config.dynamic_batching.max_queue_delay_microseconds
        check(wait_for(lambda: delay() == 3000),
              "the changed config was reloaded")
        time.sleep(3)
        shutil.rmtree(os.path.join(model_dir, "2"))
        check(wait_for(lambda: seen and seen[-1][0].get("1") == "READY" and
                       seen[-1][0].get("2") != "READY"),
              "version 1 serves again once version 2 is removed")
    finally:
        _, errors = load.communicate(timeout=120)
        stop.set()
        watcher.join()
        if sys.exc_info()[0] is not None:
            server.kill()
    check(load.returncode == 0, f"segload ran: {errors[-500:]}")
    step = json.load(open(out))["steps"][0] if load.returncode == 0 else {}
    check(step.get("ok", 0) > 20 and not step.get("errors"),
          f"no request failed across the switches: {step.get('ok')} ok, "
          f"errors {step.get('errors')}")
    states = set(s for sample, _ in seen for s in sample.values())
    check(states <= STATES and {"UNLOADING", "UNAVAILABLE"} & states,
          f"states reported: {sorted(states)}")
    never_down = all(ready and "READY" in sample.values()
                     for sample, ready in seen)
    check(never_down and len(seen) > 100,
          f"a version was READY in each of {len(seen)} samples")
    code = server.stop()
    check(code == 0, f"segserve (poll) exited {code}")


def explicit_mode(args, workdir, grpc, oip, oip_grpc):
    root = os.path.join(workdir, "explicit")
    copy_model(args.model_repository, root)
    admin, reader = "a" * 24, "r" * 24
    tokens = os.path.join(workdir, "tokens")
    with open(tokens, "w") as f:
        f.write(f"{admin} all\n{reader} inference,metadata\n")
    server = SegserveProcess(args.segserve, [
        f"--model_repository={root}", "--host=127.0.0.1", "--grpc_port=0", "--http_port=-1",
        "--metrics_port=0", "--model_control_mode=explicit",
        "--default_model=", f"--auth_tokens_file={tokens}"],
        os.path.join(workdir, "explicit.log"))
    port, _ = server.wait_ready(timeout_s=120)
    stub = oip_grpc.GRPCInferenceServiceStub(
        grpc.insecure_channel(f"127.0.0.1:{port}"))

    def call(method, request, token=admin):
        try:
            method(request, timeout=120,
                   metadata=[("authorization", f"Bearer {token}")])
        except grpc.RpcError as e:
            return e.code(), e.details()
        return grpc.StatusCode.OK, ""

    def ready():
        return stub.ModelReady(oip.ModelReadyRequest(name=MODEL), metadata=[
            ("authorization", f"Bearer {reader}")]).ready

    try:
        index = stub.RepositoryIndex(oip.RepositoryIndexRequest(), metadata=[
            ("authorization", f"Bearer {reader}")])
        check([(m.name, m.state) for m in index.models] ==
              [(MODEL, "UNAVAILABLE")] and "load request" in
              index.models[0].reason, f"not loaded at start: {index.models}")
        load = oip.RepositoryModelLoadRequest(model_name=MODEL)
        code, _ = call(stub.RepositoryModelLoad, load, token=reader)
        check(code == grpc.StatusCode.PERMISSION_DENIED,
              f"loading needs the admin right: {code}")
        code, _ = call(stub.RepositoryModelLoad, load)
        check(code == grpc.StatusCode.OK and ready(),
              f"RepositoryModelLoad loaded it: {code}")
        text = open(os.path.join(root, MODEL, "config.pbtxt")).read()
        override = oip.RepositoryModelLoadRequest(model_name=MODEL)
        override.parameters["config"].string_param = text.replace(
            "max_batch_size: 8", "max_batch_size: 4").replace(
            "preferred_batch_size: [4, 8]", "preferred_batch_size: [4]")
        code, words = call(stub.RepositoryModelLoad, override)
        config = stub.ModelConfig(oip.ModelConfigRequest(name=MODEL),
                                  metadata=[("authorization",
                                             f"Bearer {reader}")]).config
        check(code == grpc.StatusCode.OK and config.max_batch_size == 4,
              f"a config override applies: {code} {words} "
              f"max_batch_size {config.max_batch_size}")
        bad = oip.RepositoryModelLoadRequest(model_name=MODEL)
        bad.parameters["config"].string_param = "max_batch_size: 99999"
        for request, expected, words_in, what in [
                (bad, grpc.StatusCode.INVALID_ARGUMENT, "the config of the load request",
                 "a bad override"),
                (oip.RepositoryModelLoadRequest(model_name="../x"),
                 grpc.StatusCode.INVALID_ARGUMENT, "one path component",
                 "a path as a name"),
                (oip.RepositoryModelLoadRequest(model_name="nope"),
                 grpc.StatusCode.NOT_FOUND, "no such directory",
                 "an unknown model"),
                (oip.RepositoryModelLoadRequest(model_name=MODEL,
                                                repository_name="other"),
                 grpc.StatusCode.INVALID_ARGUMENT, "one repository",
                 "another repository")]:
            code, words = call(stub.RepositoryModelLoad, request)
            check(code == expected and words_in in words,
                  f"{what} is refused: {code} {words}")
        unknown = oip.RepositoryModelLoadRequest(model_name=MODEL)
        unknown.parameters["file:1/model.pt"].bytes_param = b"x"
        code, words = call(stub.RepositoryModelLoad, unknown)
        check(code == grpc.StatusCode.INVALID_ARGUMENT and
              "allowed: \"config\"" in words,
              f"an unknown parameter is refused: {code} {words}")
        check(ready(), "the refused loads left the model serving")
        code, _ = call(stub.RepositoryModelUnload,
                       oip.RepositoryModelUnloadRequest(model_name=MODEL))
        check(code == grpc.StatusCode.OK and not ready(),
              f"RepositoryModelUnload unloaded it: {code}")
    finally:
        code = server.stop()
    check(code == 0, f"segserve (explicit) exited {code}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--segserve", required=True)
    parser.add_argument("--segload", required=True)
    parser.add_argument("--proto_root", required=True)
    parser.add_argument("--model_repository", required=True)
    args = parser.parse_args()
    # A hang shows where it is, before ctest's timeout kills the test.
    faulthandler.dump_traceback_later(270, exit=True)
    workdir = tempfile.mkdtemp(prefix="segserve-lifecycle-")
    generate_stubs(args.proto_root, workdir)
    import grpc
    from inference import open_inference_pb2 as oip
    from inference import open_inference_pb2_grpc as oip_grpc
    from segserve.v1 import segmentation_pb2 as v1
    from segserve.v1 import segmentation_pb2_grpc as v1_grpc
    poll_mode(args, workdir, grpc, oip, oip_grpc, v1, v1_grpc)
    explicit_mode(args, workdir, grpc, oip, oip_grpc)
    print(f"model lifecycle test: {'FAILED' if failures else 'ok'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
