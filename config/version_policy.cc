#include "config/version_policy.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace segserve {

std::vector<int64_t> SelectVersions(const v1::ModelConfig& config,
                                    const std::vector<int64_t>& on_disk) {
  const v1::ModelConfig::VersionPolicy& policy = config.version_policy();
  switch (policy.policy_choice_case()) {
    case v1::ModelConfig::VersionPolicy::kAll:
      return on_disk;
    case v1::ModelConfig::VersionPolicy::kSpecific: {
      const std::set<int64_t> wanted(policy.specific().versions().begin(),
                                     policy.specific().versions().end());
      return {wanted.begin(), wanted.end()};
    }
    case v1::ModelConfig::VersionPolicy::kLatest:
    case v1::ModelConfig::VersionPolicy::POLICY_CHOICE_NOT_SET:
      break;
  }
  const size_t keep = std::max<uint32_t>(1, policy.latest().num_versions());
  if (on_disk.size() <= keep) return on_disk;
  return {on_disk.end() - keep, on_disk.end()};
}

std::string DescribeVersionPolicy(const v1::ModelConfig& config) {
  const v1::ModelConfig::VersionPolicy& policy = config.version_policy();
  switch (policy.policy_choice_case()) {
    case v1::ModelConfig::VersionPolicy::kAll:
      return "all";
    case v1::ModelConfig::VersionPolicy::kSpecific:
      return absl::StrCat("specific ",
                          absl::StrJoin(policy.specific().versions(), ","));
    case v1::ModelConfig::VersionPolicy::kLatest:
    case v1::ModelConfig::VersionPolicy::POLICY_CHOICE_NOT_SET:
      break;
  }
  return absl::StrCat("latest ",
                      std::max<uint32_t>(1, policy.latest().num_versions()));
}

}  // namespace segserve
