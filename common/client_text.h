#ifndef SEGSERVE_COMMON_CLIENT_TEXT_H_
#define SEGSERVE_COMMON_CLIENT_TEXT_H_

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"

namespace segserve {

// The most of a client's string an error message repeats.
inline constexpr size_t kMaxQuotedBytes = 64;
// The longest status message a frontend sends: far below gRPC's 8 KiB
// default limit on a response's metadata, where the message travels.
inline constexpr size_t kMaxStatusMessageBytes = 2048;

// How an error message repeats a string a client sent (a model name, a
// version): in single quotes, with control and non-ASCII bytes escaped, and
// cut after kMaxQuotedBytes with its full length said, so that a hostile
// name can neither flood a log nor outgrow the response's metadata.
std::string QuoteClientText(absl::string_view text);

// `message` cut to kMaxStatusMessageBytes (marked as cut), the last bound
// before a status leaves the server.
std::string BoundStatusMessage(absl::string_view message);

}  // namespace segserve

#endif  // SEGSERVE_COMMON_CLIENT_TEXT_H_
