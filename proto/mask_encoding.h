#ifndef SEGSERVE_PROTO_MASK_ENCODING_H_
#define SEGSERVE_PROTO_MASK_ENCODING_H_

#include "absl/status/statusor.h"
#include "common/mask_codec.h"
#include "segserve/v1/segmentation.pb.h"

namespace segserve {

// Between the API's mask encoding and the common codec's format, in one
// place for the server's frontend and the client SDK.

// INVALID_ARGUMENT, naming the allowed values, for a value outside the enum.
absl::StatusOr<MaskFormat> ToMaskFormat(v1::MaskEncoding encoding);
v1::MaskEncoding ToMaskEncoding(MaskFormat format);

}  // namespace segserve

#endif  // SEGSERVE_PROTO_MASK_ENCODING_H_
