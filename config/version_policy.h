#ifndef SEGSERVE_CONFIG_VERSION_POLICY_H_
#define SEGSERVE_CONFIG_VERSION_POLICY_H_

#include <cstdint>
#include <string>
#include <vector>

#include "segserve/v1/model_config.pb.h"

namespace segserve {

// The versions a validated config's version_policy serves, ascending, out of
// those on disk (ascending). A `specific` version that is not on disk is
// still returned: the repository reports it UNAVAILABLE with the reason.
std::vector<int64_t> SelectVersions(const v1::ModelConfig& config,
                                    const std::vector<int64_t>& on_disk);

// "latest 1", "all" or "specific 1,3": for logs and messages.
std::string DescribeVersionPolicy(const v1::ModelConfig& config);

}  // namespace segserve

#endif  // SEGSERVE_CONFIG_VERSION_POLICY_H_
