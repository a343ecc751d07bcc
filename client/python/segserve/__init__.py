"""segserve: the Python SDK of the segserve semantic segmentation server.

    import segserve

    with segserve.Client("127.0.0.1:50051") as client:
        result = client.segment("street.jpg", mask_encoding="rle")
        print(result.mask.shape, result.class_stats)

Client calls the segserve.v1 API over gRPC (Segment, SegmentStream,
ListModels, GetModel and grpc.health.v1); failures raise SegserveError with
the gRPC status code. overlay() draws a mask over its image with the same
colors as the C++ SDK.
"""

from segserve.client import (HEALTH_SERVICES, SERVICE_NAME, Client,
                             ImageInput, TlsConfig, make_request,
                             service_config)
from segserve.errors import SegserveError
from segserve.masks import decode_confidence, decode_mask
from segserve.overlay import class_color, default_palette, overlay
from segserve.png import decode_png
from segserve.results import (ClassStat, HealthStatus, ModelInfo,
                              ModelVersionStatus, SegmentResult, Timing)

__version__ = "0.1.0"

__all__ = [
    "Client", "TlsConfig", "SegserveError", "SegmentResult", "ClassStat",
    "Timing", "ModelInfo", "ModelVersionStatus", "HealthStatus", "ImageInput",
    "overlay", "class_color", "default_palette", "decode_mask",
    "decode_confidence", "decode_png", "make_request", "service_config",
    "SERVICE_NAME", "HEALTH_SERVICES", "__version__",
]
