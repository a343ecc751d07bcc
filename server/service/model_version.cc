#include "server/service/model_version.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/client_text.h"

namespace segserve {

absl::StatusOr<int64_t> ParseModelVersion(absl::string_view text) {
  if (text.empty()) return 0;
  int64_t number = 0;
  if (!absl::SimpleAtoi(text, &number) || number <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("model version ", QuoteClientText(text),
                     " is not a version number; give a positive integer, or "
                     "none for the latest ready version"));
  }
  return number;
}

}  // namespace segserve
