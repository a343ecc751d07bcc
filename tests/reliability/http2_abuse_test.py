#!/usr/bin/python3
"""Hostile HTTP/2 clients against the real segserve, spoken raw with
Debian's python3-h2 over plaintext (h2c with prior knowledge):
  1. a ping flood on a connection with no call: the server answers with
     GOAWAY (ENHANCE_YOUR_CALM) and closes that connection;
  2. one connection opening far more SegmentStream calls than the
     --grpc_max_concurrent_streams it was told: the server advertises the
     bound, and gRPC fails the streams of a client that goes past it
     (UNAVAILABLE "Failed parsing HTTP/2" and RST_STREAM) instead of
     holding them;
  3. rapid reset (CVE-2023-44487's pattern): thousands of streams opened and
     reset at once;
  4. a client that disconnects in the middle of a request.
After each, a well-behaved client (segclient) is still answered within
--normal_s, and the server process is alive.
"""
import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", ".."))
from tests.segserve_process import SegserveProcess  # noqa: E402

MAX_STREAMS = 32
failures = []


def check(condition, message):
    print(("ok   " if condition else "FAIL ") + message)
    if not condition:
        failures.append(message)


class RawClient:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=True, header_encoding="utf-8"))
        self.conn.initiate_connection()
        self.flush()
        self.events = []

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def pump(self, seconds):
        """Reads and collects events for up to `seconds`; False once the
        server closed the connection."""
        deadline = time.time() + seconds
        while time.time() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.time()))
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return True
            except (ConnectionResetError, BrokenPipeError):
                return False
            if not data:
                return False
            try:
                self.events += self.conn.receive_data(data)
            except h2.exceptions.ProtocolError:
                return False
            try:
                self.flush()
            except (BrokenPipeError, ConnectionResetError):
                return False
        return True

    def headers(self, stream_id, end_stream=False,
                path="/grpc.health.v1.Health/Check"):
        self.conn.send_headers(stream_id, [
            (":method", "POST"), (":scheme", "http"),
            (":path", path),
            (":authority", "127.0.0.1"), ("content-type", "application/grpc"),
            ("te", "trailers")], end_stream=end_stream)

    def close(self):
        self.sock.close()


def well_behaved(args, port, normal_s):
    start = time.time()
    code = subprocess.run(
        [args.segclient, f"--target=127.0.0.1:{port}", "--health",
         "--health_service=liveness", "--deadline_ms=10000"],
        capture_output=True).returncode
    return code == 0 and time.time() - start < normal_s


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--segserve", required=True)
    parser.add_argument("--segclient", required=True)
    parser.add_argument("--model_repository", required=True)
    parser.add_argument("--normal_s", type=float, default=5)
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="segserve-http2-")
    server = SegserveProcess(args.segserve, [
        f"--model_repository={args.model_repository}", "--host=127.0.0.1",
        "--default_model=scenes-sgcpnet",
        "--grpc_port=0", "--http_port=-1", "--metrics_port=-1", "--cpu_cores=1",
        f"--grpc_max_concurrent_streams={MAX_STREAMS}"],
        os.path.join(workdir, "segserve.log"))
    port, _ = server.wait_ready(timeout_s=120)
    try:
        # 1. Ping flood without calls.
        flood = RawClient(port)
        open_after = True
        for i in range(200):
            if flood.conn.state_machine.state == h2.connection.ConnectionState.CLOSED:
                break  # The GOAWAY came in with the last read.
            flood.conn.ping(i.to_bytes(8, "big"))
            try:
                flood.flush()
            except (BrokenPipeError, ConnectionResetError):
                break
            open_after = flood.pump(0.01)
            if not open_after:
                break
        open_after = open_after and flood.pump(1)
        goaways = [e for e in flood.events
                   if isinstance(e, h2.events.ConnectionTerminated)]
        check(bool(goaways) and goaways[0].error_code
              == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM,
              "ping flood: GOAWAY ENHANCE_YOUR_CALM "
              f"({goaways[0].error_code if goaways else 'none'})")
        flood.close()
        check(well_behaved(args, port, args.normal_s),
              "ping flood: other clients are served")

        # 2. Far more streams than allowed on one connection.
        greedy = RawClient(port)
        greedy.pump(0.5)  # The server's SETTINGS.
        # h2 honours the server's limit itself; a hostile client does not.
        codes = h2.settings.SettingCodes
        greedy.conn.remote_settings[codes.MAX_CONCURRENT_STREAMS] = 1 << 20
        greedy.conn.remote_settings.acknowledge()
        for n in range(4 * MAX_STREAMS):
            greedy.headers(1 + 2 * n,
                           path="/segserve.v1.Segmentation/SegmentStream")
        greedy.flush()
        greedy.pump(2)
        goaway = [e for e in greedy.events
                  if isinstance(e, h2.events.ConnectionTerminated)]
        settings = [e for e in greedy.events
                    if isinstance(e, h2.events.RemoteSettingsChanged)]
        advertised = None
        for e in settings:
            change = e.changed_settings.get(
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS)
            if change is not None:
                advertised = change.new_value
        failed = {e.stream_id for e in greedy.events
                  if isinstance(e, h2.events.StreamReset)
                  or (isinstance(e, (h2.events.ResponseReceived,
                                     h2.events.TrailersReceived))
                      and any(k == "grpc-status" and v != "0"
                              for k, v in e.headers))}
        opened = 4 * MAX_STREAMS
        check(advertised == MAX_STREAMS,
              f"streams: the server advertises {advertised} "
              f"(--grpc_max_concurrent_streams={MAX_STREAMS})")
        check(bool(goaway) or len(failed) > 0,
              f"streams: {opened} SegmentStream calls opened past the bound "
              f"on one connection; gRPC failed {len(failed)} of them"
              f"{' and sent GOAWAY' if goaway else ''}")
        greedy.close()
        check(well_behaved(args, port, args.normal_s),
              "streams: other clients are served")

        # 3. Rapid reset.
        reset = RawClient(port)
        reset.pump(0.5)
        sent = 0
        start = time.time()
        try:
            for n in range(5000):
                stream_id = 1 + 2 * n
                reset.headers(stream_id)
                reset.conn.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
                sent += 1
                if n % 100 == 99:
                    reset.flush()
                    if not reset.pump(0.001):
                        break
            reset.flush()
        except (BrokenPipeError, ConnectionResetError, h2.exceptions.H2Error):
            pass
        alive_during = well_behaved(args, port, args.normal_s)
        reset.close()
        check(alive_during, f"rapid reset: {sent} streams reset in "
              f"{time.time() - start:.1f} s, other clients served meanwhile")
        check(server.process.poll() is None, "rapid reset: the server lives")

        # 4. A client that goes away mid-request.
        quitter = RawClient(port)
        quitter.headers(1)
        quitter.conn.send_data(1, b"\x00\x00\x00\x10\x00partial")
        quitter.flush()
        quitter.close()
        check(well_behaved(args, port, args.normal_s),
              "disconnect mid-request: other clients are served")
    finally:
        code = server.stop()
    check(code == 0, f"the server drained and stopped cleanly (exit {code})")
    print(f"http2 abuse test: {'FAILED' if failures else 'ok'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
