#ifndef SEGSERVE_SERVER_API_JSON_UTIL_H_
#define SEGSERVE_SERVER_API_JSON_UTIL_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"
#include "rapidjson/document.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"

namespace segserve {

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

// Objects and arrays nest at most this deep in a request: deeper is refused
// while parsing, before it costs memory (TF Serving's CVE-2025-0649 was a
// recursion on nesting).
inline constexpr int kMaxJsonDepth = 32;

// Parses `text` as one JSON value into `document`, iteratively (no
// recursion) and validating UTF-8. INVALID_ARGUMENT with the offset and the
// reason, or the depth, when it is not JSON or nests too deep.
absl::Status ParseJson(absl::string_view text, rapidjson::Document* document);

// Writes `message` as a JSON object named by its proto fields, as the Open
// Inference Protocol's REST side names them: 64-bit integers as numbers,
// enums by name, maps as objects, unset singular messages left out.
void WriteProtoJson(const google::protobuf::Message& message,
                    JsonWriter& writer);
std::string ProtoToJson(const google::protobuf::Message& message);

// {"error": message}, as Triton's and KServe's REST errors.
std::string ErrorJson(absl::string_view message);

// `value`'s JSON type, for messages ("a string", "an array", ...).
const char* JsonTypeName(const rapidjson::Value& value);

}  // namespace segserve

#endif  // SEGSERVE_SERVER_API_JSON_UTIL_H_
