#ifndef SEGSERVE_CONFIG_MODEL_CONFIG_H_
#define SEGSERVE_CONFIG_MODEL_CONFIG_H_

#include <string>

#include "absl/status/statusor.h"
#include "common/preprocess_options.h"
#include "segserve/v1/model_config.pb.h"

namespace segserve {

// Builtin architectures that a config may name.
inline constexpr const char* kBuiltinArchitectures[] = {"sgcpnet", "cgrseg_t",
                                                        "cgrseg_b", "cgrseg_l"};

// Parses protobuf text (the contents of `path`, used in messages), checks
// every field and fills in defaults: name from `dir_name`, ImageNet mean/std,
// max_batch_size 1, one AUTO instance, one priority level, class_N names,
// version_policy latest 1.
// Errors are INVALID_ARGUMENT and name the file, the field and the reason.
absl::StatusOr<v1::ModelConfig> ParseModelConfig(const std::string& text,
                                                 const std::string& path,
                                                 const std::string& dir_name);

// Reads <model_dir>/config.pbtxt and parses it as above.
absl::StatusOr<v1::ModelConfig> LoadModelConfig(const std::string& model_dir);

// The preprocessing a valid config asks for (input size, resize, mean, std).
PreprocessOptions PreprocessOptionsFromConfig(const v1::ModelConfig& config);

}  // namespace segserve

#endif  // SEGSERVE_CONFIG_MODEL_CONFIG_H_
