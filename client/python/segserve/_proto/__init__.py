"""gRPC stubs of proto/segserve/v1/segmentation.proto.

Generated at build time by setup.py (protoc and grpc_python_plugin) next to
this file in the built package; never committed (see .gitignore).
"""
