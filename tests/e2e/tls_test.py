#!/usr/bin/python3
"""TLS and mTLS through the real binaries, with certificates that openssl
makes at test time (nothing is committed).

Against segserve serving the shipped model repository on 127.0.0.1:
  1. TLS: a client trusting the CA connects; plaintext, a client trusting
     another CA, and a server certificate that has expired are refused;
     segload's requests over TLS succeed.
  2. mTLS (--tls_client_ca_file): a client without a certificate is
     refused, one with a certificate from the CA connects.
  3. Rotation (--tls_refresh_s=1): the server's certificate is replaced on
     disk by one from a second CA while segload keeps its connection busy;
     new clients then need the second CA, and segload loses no request.
  4. Bearer tokens over TLS (--auth_tokens_file): segload with a token file
     is served, without one it is refused, and health stays open.
The HTTP port serves the same certificates (curl over HTTPS): TLS, mTLS
and rotation as above.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", ".."))
from tests.segserve_process import SegserveProcess, ready_http_port  # noqa: E402

failures = []


def check(condition, message):
    print(("ok   " if condition else "FAIL ") + message)
    if not condition:
        failures.append(message)


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True,
                   capture_output=True)


class Pki:
    """Two CAs and the certificates the cases need, under `dir`."""

    def __init__(self, dir):
        self.dir = dir
        for ca in ("ca1", "ca2"):
            openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                    f"{ca}.key", "-out", f"{ca}.pem", "-days", "30", "-subj",
                    f"/CN=segserve test {ca}", "-addext",
                    "basicConstraints=critical,CA:TRUE", "-addext",
                    "keyUsage=critical,keyCertSign,cRLSign", cwd=dir)
        with open(self.path("both.pem"), "w") as f:
            f.write(open(self.path("ca1.pem")).read()
                    + open(self.path("ca2.pem")).read())
        self.issue("server", "ca1", "serverAuth")
        self.issue("server2", "ca2", "serverAuth")
        self.issue("client", "ca1", "clientAuth")
        self.issue("expired", "ca1", "serverAuth", expired=True)

    def path(self, name):
        return os.path.join(self.dir, name)

    def issue(self, name, ca, usage, expired=False):
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", f"/CN=segserve test {name}", cwd=self.dir)
        with open(self.path(f"{name}.ext"), "w") as f:
            f.write("basicConstraints=CA:FALSE\n"
                    "keyUsage=critical,digitalSignature\n"
                    f"extendedKeyUsage={usage}\n"
                    "subjectAltName=IP:127.0.0.1,DNS:segserve.test\n")
        if not expired:
            openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem",
                    "-CAkey", f"{ca}.key", "-CAcreateserial", "-days", "30",
                    "-extfile", f"{name}.ext", "-out", f"{name}.pem",
                    cwd=self.dir)
            return
        # `openssl ca` is the one that takes dates in the past.
        os.makedirs(self.path("issued"), exist_ok=True)
        open(self.path("index.txt"), "w").close()
        with open(self.path("serial"), "w") as f:
            f.write("1000\n")
        with open(self.path("ca.cnf"), "w") as f:
            f.write(f"[ca]\ndefault_ca=test\n[test]\ndir={self.dir}\n"
                    "database=$dir/index.txt\nnew_certs_dir=$dir/issued\n"
                    "serial=$dir/serial\ndefault_md=sha256\n"
                    "policy=any\nunique_subject=no\n[any]\n"
                    "commonName=supplied\n")
        openssl("ca", "-batch", "-config", "ca.cnf", "-cert", f"{ca}.pem",
                "-keyfile", f"{ca}.key", "-in", f"{name}.csr", "-out",
                f"{name}.pem", "-startdate", "20200101000000Z", "-enddate",
                "20200102000000Z", "-extfile", f"{name}.ext", cwd=self.dir)


def health(args, port, *tls_flags):
    """segclient --health's exit code: 0 SERVING, 2 unreachable."""
    return subprocess.run(
        [args.segclient, f"--target=127.0.0.1:{port}", "--health",
         "--deadline_ms=5000", *tls_flags],
        capture_output=True, text=True).returncode


def https(port, *curl_flags, scheme="https"):
    """The HTTP code curl gets for readiness on the HTTP port ("000": the
    connection or the handshake failed)."""
    return subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
         "--max-time", "10", *curl_flags,
         f"{scheme}://127.0.0.1:{port}/v2/health/ready"],
        capture_output=True, text=True).stdout


def start(args, workdir, name, tls_flags):
    """The server, its gRPC port and its HTTP port."""
    server = SegserveProcess(args.segserve, [
        f"--model_repository={args.model_repository}", "--host=127.0.0.1",
        "--default_model=scenes-sgcpnet",
        "--grpc_port=0", "--http_port=0", "--metrics_port=-1", "--cpu_cores=1",
        "--preprocess_threads=1", *tls_flags],
        os.path.join(workdir, f"segserve-{name}.log"))
    port, _ = server.wait_ready(timeout_s=120)
    return server, port, ready_http_port(server.log_text())


def segload(args, port, workdir, name, seconds, *tls_flags):
    out = os.path.join(workdir, f"{name}.json")
    process = subprocess.Popen([
        args.segload, f"--target=127.0.0.1:{port}", "--concurrency=2",
        f"--duration_s={seconds}", "--warmup_requests=0", "--raw",
        "--sizes=64x64", "--mask_encoding=raw", "--deadline_ms=20000",
        f"--json={out}", *tls_flags],
        stdout=subprocess.DEVNULL, stderr=open(out + ".log", "w"))
    return process, out


def load_result(process, out):
    """(segload's step, its log); the step also when segload failed (it
    exits 1 when no request of a step succeeded)."""
    process.wait(timeout=300)
    log = open(out + ".log").read()
    if not os.path.exists(out):
        return None, log
    with open(out) as f:
        return json.load(f)["steps"][0], log


def main():
    parser = argparse.ArgumentParser()
    for flag in ("segserve", "segclient", "segload", "model_repository"):
        parser.add_argument("--" + flag, required=True)
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="segserve-tls-")
    pki = Pki(workdir)
    p = pki.path
    trust1 = [f"--tls_ca_file={p('ca1.pem')}"]

    # 1. TLS.
    server, port, http = start(args, workdir, "tls", [
        f"--tls_cert_file={p('server.pem')}",
        f"--tls_key_file={p('server.key')}"])
    try:
        check(health(args, port, *trust1) == 0, "TLS client trusting the CA")
        check(health(args, port) == 2, "plaintext client refused")
        check(health(args, port, f"--tls_ca_file={p('ca2.pem')}") == 2,
              "client trusting another CA refused")
        check(health(args, port, *trust1,
                     "--tls_server_name=segserve.test") == 0,
              "--tls_server_name checks the certificate's DNS name")
        check(https(http, "--cacert", p("ca1.pem")) == "200",
              "HTTPS client trusting the CA")
        check(https(http, scheme="http") == "000",
              "plaintext HTTP refused on the TLS port")
        check(https(http, "--cacert", p("ca2.pem")) == "000",
              "HTTPS client trusting another CA refused")
        step, log = load_result(*segload(args, port, workdir, "tls", 2,
                                         *trust1))
        check(step is not None and step["ok"] > 0 and step["failed"] == 0,
              f"segload over TLS: {step and step['ok']} ok, "
              f"{step and step['failed']} failed {log[-500:]}")
    finally:
        server.stop()

    server, port, _ = start(args, workdir, "expired", [
        f"--tls_cert_file={p('expired.pem')}",
        f"--tls_key_file={p('expired.key')}"])
    try:
        check(health(args, port, *trust1) == 2,
              "an expired server certificate is refused by the client")
    finally:
        server.stop()

    # 2. mTLS.
    server, port, http = start(args, workdir, "mtls", [
        f"--tls_cert_file={p('server.pem')}",
        f"--tls_key_file={p('server.key')}",
        f"--tls_client_ca_file={p('ca1.pem')}"])
    try:
        check(health(args, port, *trust1) == 2,
              "mTLS: a client without a certificate is refused")
        check(health(args, port, *trust1, f"--tls_cert_file={p('client.pem')}",
                     f"--tls_key_file={p('client.key')}") == 0,
              "mTLS: a client with a certificate from the CA connects")
        check(health(args, port, *trust1, f"--tls_cert_file={p('server2.pem')}",
                     f"--tls_key_file={p('server2.key')}") == 2,
              "mTLS: a certificate from another CA is refused")
        check(https(http, "--cacert", p("ca1.pem")) == "000",
              "mTLS over HTTPS: a client without a certificate is refused")
        check(https(http, "--cacert", p("ca1.pem"), "--cert", p("client.pem"),
                    "--key", p("client.key")) == "200",
              "mTLS over HTTPS: a client with a certificate from the CA")
    finally:
        server.stop()

    # 3. Rotation while a client stays connected.
    live = os.path.join(workdir, "live")
    os.makedirs(live)
    for suffix in ("pem", "key"):
        with open(os.path.join(live, f"tls.{suffix}"), "w") as f:
            f.write(open(p(f"server.{suffix}")).read())
    server, port, http = start(args, workdir, "rotation", [
        f"--tls_cert_file={os.path.join(live, 'tls.pem')}",
        f"--tls_key_file={os.path.join(live, 'tls.key')}",
        "--tls_refresh_s=1"])
    try:
        load = segload(args, port, workdir, "rotation", 8,
                       f"--tls_ca_file={p('both.pem')}")
        time.sleep(2)
        # As a Kubernetes secret changes: the new pair appears at once.
        for suffix in ("pem", "key"):
            staged = os.path.join(live, f".tls.{suffix}.new")
            with open(staged, "w") as f:
                f.write(open(p(f"server2.{suffix}")).read())
            os.replace(staged, os.path.join(live, f"tls.{suffix}"))
        deadline = time.time() + 10
        while (time.time() < deadline
               and health(args, port, f"--tls_ca_file={p('ca2.pem')}") != 0):
            time.sleep(0.5)
        check(health(args, port, f"--tls_ca_file={p('ca2.pem')}") == 0,
              "the rotated certificate is served without a restart")
        check(health(args, port, *trust1) == 2,
              "new clients no longer get the old certificate")
        deadline = time.time() + 10
        while (time.time() < deadline and
               https(http, "--cacert", p("ca2.pem")) != "200"):
            time.sleep(0.5)
        check(https(http, "--cacert", p("ca2.pem")) == "200" and
              https(http, "--cacert", p("ca1.pem")) == "000",
              "the HTTP port serves the rotated certificate too")
        step, log = load_result(*load)
        check(step is not None and step["ok"] > 0 and step["failed"] == 0,
              f"segload through the rotation: {step and step['ok']} ok, "
              f"{step and step['failed']} failed {log[-500:]}")
    finally:
        server.stop()

    # 4. Bearer tokens over TLS.
    with open(p("tokens.txt"), "w") as f:
        f.write("load-token-0123456789abcdef inference\n")
    with open(p("token"), "w") as f:
        f.write("load-token-0123456789abcdef\n")
    server, port, _ = start(args, workdir, "tokens", [
        f"--tls_cert_file={p('server.pem')}",
        f"--tls_key_file={p('server.key')}",
        f"--auth_tokens_file={p('tokens.txt')}"])
    try:
        check(health(args, port, *trust1) == 0, "tokens: health stays open")
        step, log = load_result(*segload(args, port, workdir, "token", 2,
                                         *trust1,
                                         f"--bearer_token_file={p('token')}"))
        check(step is not None and step["ok"] > 0 and step["failed"] == 0,
              f"tokens: segload with its token: {step and step['ok']} ok "
              f"{log[-300:]}")
        step, log = load_result(*segload(args, port, workdir, "no-token", 1,
                                         *trust1))
        check(step is not None and step["ok"] == 0
              and step["errors"].get("UNAUTHENTICATED", 0) > 0,
              "tokens: segload without a token is refused UNAUTHENTICATED")
    finally:
        server.stop()

    print(f"tls test: {'FAILED ' + str(len(failures)) if failures else 'ok'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
