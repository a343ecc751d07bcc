#include "common/client_text.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace segserve {

std::string QuoteClientText(absl::string_view text) {
  if (text.size() <= kMaxQuotedBytes) {
    return absl::StrCat("'", absl::CHexEscape(text), "'");
  }
  return absl::StrCat("'", absl::CHexEscape(text.substr(0, kMaxQuotedBytes)),
                      "...' (", text.size(), " bytes)");
}

std::string BoundStatusMessage(absl::string_view message) {
  if (message.size() <= kMaxStatusMessageBytes) return std::string(message);
  constexpr absl::string_view kCut = " [message cut]";
  return absl::StrCat(message.substr(0, kMaxStatusMessageBytes - kCut.size()),
                      kCut);
}

}  // namespace segserve
