"""Builds the segserve Python SDK.

The metadata is in pyproject.toml; this file adds one build step: the gRPC
stubs of the segserve.v1 API are generated from the repository's
proto/segserve/v1/segmentation.proto (two directories up) into
segserve/_proto/ of the build, with protoc and grpc_python_plugin (Debian's
protobuf-compiler and protobuf-compiler-grpc), or with grpcio-tools when
those are missing. The stubs are never committed.

    python3 setup.py build_py [--build-lib DIR]
    pip install --no-build-isolation .

Environment: SEGSERVE_PROTO_ROOT (the proto/ directory), PROTOC,
GRPC_PYTHON_PLUGIN.
"""

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_FILE = os.path.join("segserve", "v1", "segmentation.proto")
# The generated gRPC module imports its messages as `segserve.v1`, which
# would resolve to this package (also named segserve); it is rewritten to a
# relative import of the module next to it.
GRPC_IMPORT = "from segserve.v1 import segmentation_pb2 as"
GRPC_IMPORT_FIXED = "from . import segmentation_pb2 as"
# Likewise the message classes are registered under that module name; the
# module's real name lets them pickle and name themselves correctly.
MODULE_NAME = "'segserve.v1.segmentation_pb2'"


def proto_root() -> str:
    """The proto/ directory the stubs are generated from."""
    root = os.environ.get("SEGSERVE_PROTO_ROOT") or os.path.join(
        HERE, "..", "..", "proto")
    root = os.path.normpath(root)
    if not os.path.isfile(os.path.join(root, PROTO_FILE)):
        sys.exit(f"setup.py: {os.path.join(root, PROTO_FILE)} not found; "
                 "build from the segserve repository, or set "
                 "SEGSERVE_PROTO_ROOT to its proto/ directory")
    return root


def protoc_command(root: str, out_dir: str) -> list:
    """protoc with Debian's grpc_python_plugin, else grpcio-tools' protoc,
    writing both stubs of the API into `out_dir`."""
    protoc = os.environ.get("PROTOC") or shutil.which("protoc")
    plugin = (os.environ.get("GRPC_PYTHON_PLUGIN") or
              shutil.which("grpc_python_plugin") or
              "/usr/bin/grpc_python_plugin")
    outputs = [f"--proto_path={root}", f"--python_out={out_dir}",
               f"--grpc_python_out={out_dir}",
               os.path.join(root, PROTO_FILE)]
    if protoc and os.path.exists(plugin):
        return [protoc, f"--plugin=protoc-gen-grpc_python={plugin}",
                *outputs]
    if importlib.util.find_spec("grpc_tools") is None:
        sys.exit("setup.py: needs protoc and grpc_python_plugin (Debian: "
                 "apt-get install protobuf-compiler protobuf-compiler-grpc) "
                 "or grpcio-tools to generate the gRPC stubs")
    return [sys.executable, "-m", "grpc_tools.protoc", *outputs]


def generate_stubs(package_dir: str) -> None:
    """Writes segmentation_pb2.py and segmentation_pb2_grpc.py into
    `package_dir` (segserve/_proto of a build)."""
    root = proto_root()
    with tempfile.TemporaryDirectory(prefix="segserve-stubs-") as tmp:
        subprocess.run(protoc_command(root, tmp), check=True)
        generated = os.path.join(tmp, "segserve", "v1")
        os.makedirs(package_dir, exist_ok=True)
        with open(os.path.join(generated, "segmentation_pb2.py")) as f:
            messages = f.read()
        with open(os.path.join(generated, "segmentation_pb2_grpc.py")) as f:
            services = f.read()
        if GRPC_IMPORT not in services:
            sys.exit("setup.py: the generated segmentation_pb2_grpc.py does "
                     f"not import its messages as expected ({GRPC_IMPORT})")
        services = services.replace(GRPC_IMPORT, GRPC_IMPORT_FIXED)
        messages = messages.replace(MODULE_NAME, "__name__")
        for name, text in (("segmentation_pb2.py", messages),
                           ("segmentation_pb2_grpc.py", services)):
            with open(os.path.join(package_dir, name), "w") as f:
                f.write(text)


class BuildPyWithStubs(build_py):
    """build_py that also generates the gRPC stubs into the build."""

    def run(self) -> None:
        """Copies the package, then generates the stubs into it."""
        super().run()
        if getattr(self, "editable_mode", False):
            # An editable install imports from the source tree.
            target = os.path.join(HERE, "segserve", "_proto")
        else:
            target = os.path.join(self.build_lib, "segserve", "_proto")
        generate_stubs(target)

    def get_outputs(self, include_bytecode: bool = True) -> list:
        """The copied files and the generated stubs, for install records."""
        outputs = super().get_outputs(include_bytecode)
        stubs = os.path.join(self.build_lib, "segserve", "_proto")
        return outputs + [os.path.join(stubs, name) for name in
                          ("segmentation_pb2.py", "segmentation_pb2_grpc.py")]


def version() -> str:
    """segserve.__version__, read without importing the package (its
    imports need the stubs this build makes)."""
    with open(os.path.join(HERE, "segserve", "__init__.py")) as f:
        match = re.search(r'^__version__ = "([^"]+)"', f.read(), re.M)
    if not match:
        sys.exit("setup.py: segserve/__init__.py has no __version__")
    return match.group(1)


# setuptools reads pyproject.toml and finds the packages relative to the
# working directory: work from this file's directory wherever it is run from.
os.chdir(HERE)
setup(
    version=version(),
    packages=["segserve", "segserve._proto"],
    package_data={"segserve": ["py.typed"]},
    cmdclass={"build_py": BuildPyWithStubs},
)
