"""The one exception type the SDK raises for failed calls."""

import grpc


class SegserveError(Exception):
    """A call failed: the server's (or the transport's) gRPC status.

    ``code`` is a :class:`grpc.StatusCode` and ``message`` the status
    message, which for segserve says what was wrong and what is allowed.
    Mask and confidence data that cannot be decoded also raise this, with
    ``INVALID_ARGUMENT``, as the C++ SDK's decoders do. Wrong arguments to the
    SDK's own functions raise ``TypeError`` or ``ValueError`` instead: they are
    mistakes in the calling code, not outcomes of a call.
    """

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError) -> "SegserveError":
        """Converts the error a gRPC stub raised. Every error of a finished
        call is also a grpc.Call that carries its code and details; anything
        else is reported as UNKNOWN rather than lost."""
        code = error.code() if hasattr(error, "code") else None
        details = error.details() if hasattr(error, "details") else None
        if not isinstance(code, grpc.StatusCode):
            return cls(grpc.StatusCode.UNKNOWN, str(error))
        return cls(code, details or "")
