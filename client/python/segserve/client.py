"""The segserve client: one gRPC channel to a server and the calls of the
segserve.v1 API, with the connection behaviour of the C++ SDK
(client/client.cc): the same retry policy, deadlines, token header and load
balancing.
"""

import json
import os
import threading
from dataclasses import dataclass
from typing import (Any, Callable, Iterable, Iterator, List, Optional, Tuple,
                    Union)

import grpc
import numpy as np

from segserve.errors import SegserveError
from segserve.masks import encoding_value
from segserve.results import HealthStatus, ModelInfo, SegmentResult

try:
    from segserve._proto import segmentation_pb2 as pb
    from segserve._proto import segmentation_pb2_grpc as pb_grpc
except ImportError as _error:  # pragma: no cover - a build step is missing.
    raise ImportError(
        "segserve's gRPC stubs are not generated: install the package "
        "(pip install --no-build-isolation client/python) or build it "
        "(python3 client/python/setup.py build_py) and use the build") \
        from _error

PathLike = Union[str, "os.PathLike[str]"]
# What segment() takes: a file path, encoded file bytes (JPEG, PNG, BMP,
# WebP, TIFF), or pixels: HxWx3 uint8 RGB, or HxW (HxWx1) uint8 gray.
ImageInput = Union[PathLike, bytes, bytearray, memoryview, np.ndarray]

SERVICE_NAME = "segserve.v1.Segmentation"
# The grpc.health.v1 services segserve answers: "" (the whole server) and
# "segserve.v1.Segmentation" and "readiness" (SERVING while it takes
# traffic), "liveness" (SERVING while the process works).
HEALTH_SERVICES = ("", SERVICE_NAME, "liveness", "readiness")

# The C++ SDK's defaults (ClientOptions in client/client.h).
_MAX_ATTEMPTS_LIMIT = 5  # gRPC's own limit, retries included.
_INITIAL_BACKOFF = "0.100s"
_MAX_BACKOFF = "2.000s"
_BACKOFF_MULTIPLIER = 2.0
_DNS_MIN_RERESOLUTION_MS = 2000


@dataclass(frozen=True)
class TlsConfig:
    """TLS settings of a Client; every field is optional.

    ca: PEM file of the CAs to verify the server with (default: the
    system's). cert and key: PEM files of a client certificate, for servers
    that require one (mTLS); give both or neither. server_name: the name the
    server's certificate must carry when it is not the target's host (e.g.
    connecting by IP to a certificate for a DNS name).
    """

    ca: Optional[PathLike] = None
    cert: Optional[PathLike] = None
    key: Optional[PathLike] = None
    server_name: Optional[str] = None

    def credentials(self) -> grpc.ChannelCredentials:
        """The channel credentials of these files. Raises ValueError when
        only one of cert and key is given, OSError when a file cannot be
        read."""
        if (self.cert is None) != (self.key is None):
            raise ValueError("a TLS client certificate needs both its "
                             "certificate (cert) and its key (key) file")
        return grpc.ssl_channel_credentials(
            root_certificates=_read(self.ca),
            private_key=_read(self.key),
            certificate_chain=_read(self.cert))


def _read(path: Optional[PathLike]) -> Optional[bytes]:
    """The bytes of a PEM file; None for no file."""
    if path is None:
        return None
    with open(path, "rb") as f:
        return f.read()


def service_config(target: str, retries: int,
                   load_balancing_policy: Optional[str] = None) -> str:
    """The JSON service config a Client gives its channel, as the C++ SDK's
    MakeServiceConfigJson: round_robin for "dns:" targets unless a policy is
    named, and a retry policy for segserve.v1.Segmentation that retries
    UNAVAILABLE (server restarting, draining, unreachable) and CANCELLED (a
    server cancelled the call; calls the client cancels are never retried)
    with exponential backoff. gRPC retries a call only until the server
    starts answering it (a stream: until its first response)."""
    config: dict = {}
    policy = load_balancing_policy or (
        "round_robin" if target.startswith("dns:") else "")
    if policy:
        config["loadBalancingConfig"] = [{policy: {}}]
    if retries > 0:
        config["methodConfig"] = [{
            "name": [{"service": SERVICE_NAME}],
            "retryPolicy": {
                "maxAttempts": retries + 1,
                "initialBackoff": _INITIAL_BACKOFF,
                "maxBackoff": _MAX_BACKOFF,
                "backoffMultiplier": _BACKOFF_MULTIPLIER,
                "retryableStatusCodes": ["UNAVAILABLE", "CANCELLED"],
            },
        }]
    return json.dumps(config)


def make_image(image: ImageInput) -> Any:
    """A segserve.v1.Image of `image`.

    A path is read and sent as it is, as are encoded bytes (the server
    decodes them; an empty one is the server's to refuse). An HxWx3 uint8
    array is sent as raw RGB8 pixels and an HxW or HxWx1 uint8 array as
    GRAY8; other arrays raise TypeError or ValueError. Objects that convert
    to arrays (e.g. Pillow images) are taken as their arrays.
    """
    if isinstance(image, (str, os.PathLike)):
        with open(image, "rb") as f:
            return pb.Image(encoded=f.read())
    if isinstance(image, (bytes, bytearray, memoryview)):
        return pb.Image(encoded=bytes(image))
    if not isinstance(image, np.ndarray):
        if not (hasattr(image, "__array__") or
                hasattr(image, "__array_interface__")):
            raise TypeError(
                f"cannot send an image of type {type(image).__name__}; give "
                "a path, encoded bytes or a uint8 numpy array")
        image = np.asarray(image)
    if image.dtype != np.uint8:
        raise TypeError(f"raw images must be uint8, not {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 3:
        pixel_format = pb.RGB8
    elif image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        pixel_format = pb.GRAY8
    else:
        raise ValueError(f"raw image shape {image.shape} is neither HxWx3 "
                         "(RGB) nor HxW (gray)")
    if image.size == 0:
        raise ValueError("cannot send an empty image")
    height, width = image.shape[:2]
    # The wire format is packed rows: copy views with strides first.
    return pb.Image(raw=pb.RawImage(
        width=width, height=height, format=pixel_format,
        data=np.ascontiguousarray(image).tobytes()))


def make_request(image: ImageInput, model: str = "", version: str = "",
                 mask_encoding: Union[str, int] = "png",
                 confidence: bool = False, priority: int = 0,
                 request_id: str = "") -> Any:
    """A segserve.v1.SegmentRequest (see Client.segment for the fields)."""
    return _RequestTemplate(model, version, mask_encoding, confidence,
                            priority, request_id).make(image)


class _RequestTemplate:
    """The options of a request, checked once; make() adds an image. A
    stream checks its options before it starts, not at its first frame."""

    def __init__(self, model: str, version: str,
                 mask_encoding: Union[str, int], confidence: bool,
                 priority: int, request_id: str = "") -> None:
        if not 0 <= int(priority) < 2**32:
            raise ValueError(f"priority {priority} is out of range; 0 is the "
                             "highest, up to the model's priority_levels - 1")
        self._fields = dict(
            model=model, model_version=version,
            mask_encoding=encoding_value(mask_encoding),
            include_confidence=bool(confidence), priority=int(priority),
            request_id=request_id)

    def make(self, image: ImageInput) -> Any:
        """A segserve.v1.SegmentRequest of these options and `image`."""
        return pb.SegmentRequest(image=make_image(image), **self._fields)


def _encode_health_request(service: str) -> bytes:
    """grpc.health.v1.HealthCheckRequest {string service = 1;}, encoded by
    hand as the C++ SDK does, so that no generated health code is needed."""
    data = service.encode()
    if not data:
        return b""
    size = bytearray()
    n = len(data)
    while n >= 0x80:
        size.append((n & 0x7F) | 0x80)
        n >>= 7
    size.append(n)
    return b"\x0a" + bytes(size) + data


def _decode_health_status(data: bytes) -> HealthStatus:
    """The status of a grpc.health.v1.HealthCheckResponse {ServingStatus
    status = 1;}: field 1, a varint; absent, it is 0 (UNKNOWN)."""
    if len(data) >= 2 and data[0] == 0x08:
        value = data[1] & 0x7F
        try:
            return HealthStatus(value)
        except ValueError:
            return HealthStatus.UNKNOWN
    return HealthStatus.UNKNOWN


class _FrameRequests:
    """The request iterator of a stream. gRPC pulls it on its own thread and
    would only log an exception raised here and cancel the call; instead the
    exception is kept, the stream half-closes so that the frames before it
    are still answered, and the caller gets it after their results."""

    def __init__(self, frames: Iterable[ImageInput],
                 template: _RequestTemplate) -> None:
        self._frames = frames
        self._template = template
        self._lock = threading.Lock()
        self.sent = 0
        self.error: Optional[BaseException] = None

    def __iter__(self) -> Iterator[Any]:
        """The frames' requests; counts them and keeps what goes wrong."""
        try:
            for frame in self._frames:
                request = self._template.make(frame)
                with self._lock:
                    self.sent += 1
                yield request
        except Exception as error:  # noqa: BLE001 - handed to the caller.
            with self._lock:
                self.error = error


class Client:
    """A connection to a segserve server; a context manager.

    target: "host:port", "ipv4:1.2.3.4:5", "unix:/path" or "dns:///name:port"
    (a "dns:" target spreads calls over every address of the name). tls:
    None or False for plaintext, True for TLS verified with the system's CAs,
    or a TlsConfig. token: sent as "authorization: Bearer <token>" on every
    call, for a server started with --auth_tokens_file (use it with TLS only:
    on plaintext anyone on the path can read it). retries: how many times a
    call that failed with UNAVAILABLE or a server's CANCELLED is tried again,
    0 to 4, with a random wait that starts at 0.1 s and doubles up to 2 s.
    timeout: the default deadline of each call in seconds (of a whole
    stream, for segment_stream); None: no deadline. wait_for_ready: True
    makes calls wait (up to their deadline) for the server to become
    reachable instead of failing with UNAVAILABLE at once.

    A Client is thread-safe and meant to be shared. It does not connect until
    its first call (or wait_for_connected). Failed calls raise SegserveError.
    """

    def __init__(self, target: str,
                 tls: Union[None, bool, TlsConfig] = None,
                 token: Optional[str] = None, retries: int = 2,
                 timeout: Optional[float] = 30.0,
                 wait_for_ready: bool = False,
                 max_message_bytes: int = 64 << 20,
                 load_balancing_policy: Optional[str] = None) -> None:
        if not target:
            raise ValueError("target is empty; give host:port or "
                             "dns:///name:port")
        if not 0 <= retries < _MAX_ATTEMPTS_LIMIT:
            raise ValueError(f"retries is {retries}; allowed: 0 (none) to "
                             f"{_MAX_ATTEMPTS_LIMIT - 1} (gRPC's limit of "
                             f"{_MAX_ATTEMPTS_LIMIT} attempts)")
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout is {timeout}; give seconds > 0, or "
                             "None for no deadline")
        if max_message_bytes <= 0:
            raise ValueError(f"max_message_bytes is {max_message_bytes}; it "
                             "must be > 0")
        if load_balancing_policy not in (None, "", "pick_first",
                                         "round_robin"):
            raise ValueError(f"load_balancing_policy is "
                             f"{load_balancing_policy!r}; allowed: None "
                             "(automatic), 'pick_first', 'round_robin'")
        self._target = target
        self._timeout = timeout
        self._wait_for_ready = wait_for_ready
        self._metadata: Tuple[Tuple[str, str], ...] = (
            (("authorization", f"Bearer {token}"),) if token else ())
        options: List[Tuple[str, Any]] = [
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.service_config",
             service_config(target, retries, load_balancing_policy)),
            # Ours is the only service config: skip DNS TXT lookups.
            ("grpc.service_config_disable_resolution", 1),
            # On even without a retry policy: gRPC then still retries,
            # transparently, calls that no server saw (refused streams
            # racing a draining server's GOAWAY).
            ("grpc.enable_retries", 1),
            # gRPC retries only calls whose messages fit its retry buffer
            # (256 KiB by default); images are larger.
            ("grpc.per_rpc_retry_buffer_size", max_message_bytes),
            # gRPC's own 30 s between lookups would leave replicas added by
            # a scale-up without traffic that long.
            ("grpc.dns_min_time_between_resolutions_ms",
             _DNS_MIN_RERESOLUTION_MS),
        ]
        if tls is None or tls is False:
            self._channel = grpc.insecure_channel(target, options=options)
        else:
            config = TlsConfig() if tls is True else tls
            if not isinstance(config, TlsConfig):
                raise TypeError("tls must be None, a bool or a TlsConfig")
            if config.server_name:
                options.append(("grpc.ssl_target_name_override",
                                config.server_name))
            self._channel = grpc.secure_channel(target, config.credentials(),
                                                options=options)
        self._stub = pb_grpc.SegmentationStub(self._channel)
        self._health_check: Callable[..., HealthStatus] = (
            self._channel.unary_unary(
                "/grpc.health.v1.Health/Check",
                request_serializer=_encode_health_request,
                response_deserializer=_decode_health_status))

    # -- lifetime ----------------------------------------------------------

    def close(self) -> None:
        """Closes the channel; calls in flight end with CANCELLED."""
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"segserve.Client({self._target!r})"

    @property
    def target(self) -> str:
        """The target the client was created with."""
        return self._target

    @property
    def channel(self) -> grpc.Channel:
        """The underlying channel, for other services on the same server."""
        return self._channel

    def wait_for_connected(self, timeout: float) -> None:
        """Blocks until the channel is connected; SegserveError(UNAVAILABLE)
        after `timeout` seconds."""
        try:
            grpc.channel_ready_future(self._channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            raise SegserveError(
                grpc.StatusCode.UNAVAILABLE,
                f"could not connect to {self._target} within {timeout} s; is "
                "the server running and the target right?") from None

    # -- calls -------------------------------------------------------------

    def _call_kwargs(self, timeout: Optional[float]) -> dict:
        """Deadline, token and wait_for_ready of one call."""
        return dict(timeout=self._timeout if timeout is None else timeout,
                    metadata=self._metadata,
                    wait_for_ready=self._wait_for_ready)

    def segment(self, image: ImageInput, model: str = "", version: str = "",
                mask_encoding: str = "png", confidence: bool = False,
                priority: int = 0, timeout: Optional[float] = None,
                request_id: str = "") -> SegmentResult:
        """Segments one image; the mask comes back at the image's size.

        image: a path, encoded bytes (JPEG, PNG, BMP, WebP, TIFF), or pixels
        (HxWx3 uint8 RGB, HxW uint8 gray). model: empty for the server's
        default model; version: empty for the latest ready one.
        mask_encoding: how the mask travels ("png", "raw" or "rle"); the
        result is the same label map for each. confidence: also return each
        pixel's confidence. priority: 0 is the highest; values at or above
        the model's priority_levels are refused. timeout: seconds; None for
        the client's default. request_id: echoed in the result.
        """
        request = make_request(image, model, version, mask_encoding,
                               confidence, priority, request_id)
        try:
            response = self._stub.Segment(request,
                                          **self._call_kwargs(timeout))
        except grpc.RpcError as error:
            raise SegserveError.from_rpc_error(error) from error
        return SegmentResult.from_proto(response)

    def segment_stream(self, frames: Iterable[ImageInput], model: str = "",
                       version: str = "", mask_encoding: str = "png",
                       confidence: bool = False, priority: int = 0,
                       timeout: Optional[float] = None
                       ) -> Iterator[SegmentResult]:
        """Segments frames of a video on one SegmentStream call and yields
        their results in frame order.

        Frames are taken from `frames` as the call sends them, so it may be
        a generator of frames as they are captured; the server works on
        several at once. The options are those of segment() for every frame;
        the deadline covers the whole stream. The call starts at the first
        next() and ends when the iterator is exhausted or closed. The server
        ends a stream at its first failed frame: the results of the frames
        before it are yielded, then SegserveError with that frame's status.
        An exception raised by `frames` (or by a frame of a type that cannot
        be sent) is likewise raised after the results of the frames before
        it.
        """
        template = _RequestTemplate(model, version, mask_encoding,
                                    confidence, priority)
        return self._stream_results(_FrameRequests(frames, template),
                                    self._call_kwargs(timeout))

    def _stream_results(self, requests: _FrameRequests,
                        call_kwargs: dict) -> Iterator[SegmentResult]:
        """The generator behind segment_stream: the call starts at its first
        next()."""
        call = self._stub.SegmentStream(iter(requests), **call_kwargs)
        received = 0
        try:
            for response in call:
                received += 1
                yield SegmentResult.from_proto(response)
        except grpc.RpcError as error:
            if requests.error is not None:
                raise requests.error from None
            raise SegserveError.from_rpc_error(error) from error
        finally:
            # Ends the call when the caller stops early; a no-op after it
            # finished.
            call.cancel()
        if requests.error is not None:
            raise requests.error
        if received != requests.sent:
            raise SegserveError(
                grpc.StatusCode.INTERNAL,
                f"SegmentStream: the server sent {received} responses for "
                f"{requests.sent} requests; expected one each")

    def list_models(self, timeout: Optional[float] = None) -> List[ModelInfo]:
        """Every model the server knows, with its versions and states."""
        try:
            response = self._stub.ListModels(pb.ListModelsRequest(),
                                             **self._call_kwargs(timeout))
        except grpc.RpcError as error:
            raise SegserveError.from_rpc_error(error) from error
        return [ModelInfo.from_proto(m) for m in response.models]

    def get_model(self, name: str = "", version: str = "",
                  timeout: Optional[float] = None) -> ModelInfo:
        """One model; empty name: the server's default model, empty version:
        the latest ready one. SegserveError(NOT_FOUND) for an unknown model
        or version."""
        try:
            response = self._stub.GetModel(
                pb.GetModelRequest(name=name, version=version),
                **self._call_kwargs(timeout))
        except grpc.RpcError as error:
            raise SegserveError.from_rpc_error(error) from error
        return ModelInfo.from_proto(response)

    def health(self, service: str = "",
               timeout: Optional[float] = None) -> HealthStatus:
        """grpc.health.v1.Health/Check of `service` (see HEALTH_SERVICES):
        "" asks about the whole server. SegserveError(NOT_FOUND) when the
        server knows no such service, UNAVAILABLE when it is unreachable."""
        try:
            return self._health_check(service, **self._call_kwargs(timeout))
        except grpc.RpcError as error:
            failure = SegserveError.from_rpc_error(error)
            if failure.code == grpc.StatusCode.NOT_FOUND:
                names = ", ".join(repr(s) for s in HEALTH_SERVICES)
                raise SegserveError(
                    failure.code,
                    f"{self._target} has no health service named {service!r};"
                    f" segserve answers {names}") from error
            raise failure from error
