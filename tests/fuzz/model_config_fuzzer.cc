// config.pbtxt parsing and validation on any text: a config is accepted
// with its defaults filled in, or refused with INVALID_ARGUMENT; an accepted
// one parses again to the same config (the checks are a fixed point).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "config/model_config.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/message_differencer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<segserve::v1::ModelConfig> config =
      segserve::ParseModelConfig(text, "fuzz/config.pbtxt", "fuzz");
  if (!config.ok()) {
    if (config.status().code() != absl::StatusCode::kInvalidArgument) {
      std::abort();
    }
    return 0;
  }
  std::string printed;
  if (!google::protobuf::TextFormat::PrintToString(*config, &printed)) {
    std::abort();
  }
  absl::StatusOr<segserve::v1::ModelConfig> again =
      segserve::ParseModelConfig(printed, "fuzz/config.pbtxt", "fuzz");
  if (!again.ok() ||
      !google::protobuf::util::MessageDifferencer::Equals(*config, *again)) {
    std::abort();
  }
  return 0;
}
