"""What the SDK's calls return: plain dataclasses built from the responses.

They copy the fields of the segserve.v1 messages so that callers need no
generated code; each keeps its message in ``proto`` for fields a newer
server may add.
"""

import enum
from dataclasses import dataclass, field
from typing import Any, List, Optional

import numpy as np

from segserve.masks import decode_confidence, decode_mask


def _enum_name(message: Any, field_name: str) -> str:
    """The name of an enum field's value, read from the message's own
    descriptor (so this module needs no generated code); the number as text
    for a value this SDK does not know."""
    number = getattr(message, field_name)
    enum_type = message.DESCRIPTOR.fields_by_name[field_name].enum_type
    value = enum_type.values_by_number.get(number)
    return value.name if value is not None else str(number)


@dataclass(frozen=True)
class ClassStat:
    """Pixels of one class present in a mask."""

    class_id: int
    name: str
    pixels: int

    @classmethod
    def from_proto(cls, message: Any) -> "ClassStat":
        """From a segserve.v1.ClassStat."""
        return cls(message.class_id, message.name, message.pixels)


@dataclass(frozen=True)
class Timing:
    """Where the server spent a request's time, in microseconds."""

    queue_us: int
    preprocess_us: int
    inference_us: int
    postprocess_us: int
    # Size of the batch the request ran in (for a SLIDE model, the largest of
    # its tiles' batches).
    batch_size: int
    # Batch items the image became: 1, or its tiles for a SLIDE model.
    tiles: int

    @property
    def total_us(self) -> int:
        """Queue, preprocessing, inference and postprocessing together."""
        return (self.queue_us + self.preprocess_us + self.inference_us +
                self.postprocess_us)

    @classmethod
    def from_proto(cls, message: Any) -> "Timing":
        """From a segserve.v1.Timing."""
        return cls(message.queue_us, message.preprocess_us,
                   message.inference_us, message.postprocess_us,
                   message.batch_size, message.tiles)


@dataclass(eq=False)
class SegmentResult:
    """One segmented image.

    ``mask`` is the HxW label map at the input image's size (uint8, or uint16
    for models with more than 256 classes); ``confidence`` the HxW uint8
    softmax probability of each pixel's class, 0..255, when it was asked for,
    else None. ``class_stats`` lists the classes present, by ascending id.
    """

    mask: np.ndarray
    confidence: Optional[np.ndarray]
    class_stats: List[ClassStat]
    timing: Timing
    model: str
    version: str
    request_id: str
    proto: Any = field(default=None, repr=False)

    @property
    def width(self) -> int:
        """The mask's (and the input image's) width."""
        return int(self.mask.shape[1])

    @property
    def height(self) -> int:
        """The mask's (and the input image's) height."""
        return int(self.mask.shape[0])

    @classmethod
    def from_proto(cls, response: Any) -> "SegmentResult":
        """Decodes a segserve.v1.SegmentResponse. Raises
        SegserveError(INVALID_ARGUMENT) when its mask or confidence does not
        match the mask's size and encoding."""
        mask = response.mask
        return cls(
            mask=decode_mask(mask.data, mask.encoding, mask.width,
                             mask.height),
            confidence=decode_confidence(mask.confidence, mask.width,
                                         mask.height),
            class_stats=[ClassStat.from_proto(s)
                         for s in response.class_stats],
            timing=Timing.from_proto(response.timing),
            model=response.model,
            version=response.model_version,
            request_id=response.request_id,
            proto=response)


@dataclass(frozen=True)
class ModelVersionStatus:
    """One version of a model: its state (LOADING, READY, UNAVAILABLE,
    UNLOADING) and, when UNAVAILABLE, why."""

    version: str
    state: str
    reason: str

    @classmethod
    def from_proto(cls, message: Any) -> "ModelVersionStatus":
        """From a segserve.v1.ModelVersionStatus."""
        return cls(message.version, _enum_name(message, "state"),
                   message.reason)


@dataclass(frozen=True)
class ModelInfo:
    """A served model, as ListModels and GetModel describe it."""

    name: str
    version: str  # The version described (latest ready, or the one asked).
    state: str  # LOADING, READY, UNAVAILABLE or UNLOADING.
    reason: str
    versions: List[ModelVersionStatus]
    platform: str  # BUILTIN or TORCHSCRIPT.
    architecture: str
    input_height: int
    input_width: int
    class_names: List[str]
    max_batch_size: int
    devices: List[str]
    precision: str
    parameter_count: int
    description: str
    is_default: bool
    # STRETCH, LETTERBOX or SLIDE; for SLIDE the tile size and step in image
    # pixels.
    input_resize: str
    crop_height: int
    crop_width: int
    stride_height: int
    stride_width: int
    proto: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def from_proto(cls, message: Any) -> "ModelInfo":
        """From a segserve.v1.ModelInfo."""
        return cls(
            name=message.name,
            version=message.version,
            state=_enum_name(message, "state"),
            reason=message.reason,
            versions=[ModelVersionStatus.from_proto(v)
                      for v in message.versions],
            platform=message.platform,
            architecture=message.architecture,
            input_height=message.input_height,
            input_width=message.input_width,
            class_names=list(message.class_names),
            max_batch_size=message.max_batch_size,
            devices=list(message.devices),
            precision=message.precision,
            parameter_count=message.parameter_count,
            description=message.description,
            is_default=message.is_default,
            input_resize=message.input_resize,
            crop_height=message.crop_height,
            crop_width=message.crop_width,
            stride_height=message.stride_height,
            stride_width=message.stride_width,
            proto=message)


class HealthStatus(enum.Enum):
    """A grpc.health.v1 serving status (HealthCheckResponse.ServingStatus)."""

    UNKNOWN = 0
    SERVING = 1
    NOT_SERVING = 2
    SERVICE_UNKNOWN = 3
