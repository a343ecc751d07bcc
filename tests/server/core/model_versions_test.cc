// One model's lifecycle decisions, on files described in memory: what a
// change loads, and what the status says after loads that failed.
#include "server/core/model_versions.h"

#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/registry.h"

namespace segserve {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

ModelFiles Files(std::vector<int64_t> versions, int max_batch_size = 4) {
  ModelFiles files;
  v1::ModelConfig config;
  config.set_name("m");
  config.set_max_batch_size(uint32_t(max_batch_size));
  files.config = config;
  files.versions = versions;
  for (int64_t version : versions) {
    files.weights_paths[version] = "/nowhere/model.pt";
    files.weights_stamps[version] = "100@1";
  }
  return files;
}

class ModelVersionsTest : public ::testing::Test {
 protected:
  // Finishes a change in which every version to load failed.
  void FailLoads(const ModelFiles& files, const std::vector<int64_t>& to_load) {
    ModelVersions::LoadedCopies loaded;
    for (int64_t version : to_load) {
      loaded.emplace(version, absl::InvalidArgumentError("not a state dict"));
    }
    model_.FinishChange(files, std::move(loaded));
  }

  prometheus::Registry registry_;
  Metrics metrics_{&registry_};
  ModelVersions model_{"m", std::make_shared<Retirer>(), &metrics_};
};

TEST_F(ModelVersionsTest, NewVersionsLoadAndShowLoadingMeanwhile) {
  const ModelFiles files = Files({1, 2});
  EXPECT_THAT(model_.StartChange(files, /*force=*/false), ElementsAre(1, 2));
  const ModelStatus status = model_.Status();
  ASSERT_EQ(status.versions.size(), 2u);
  EXPECT_EQ(status.versions[0].state, ModelState::kLoading);
  EXPECT_EQ(status.versions[1].version, 2);
}

TEST_F(ModelVersionsTest, AFailedVersionIsNotRetriedUntilItsFilesChange) {
  ModelFiles files = Files({1});
  FailLoads(files, model_.StartChange(files, false));
  EXPECT_EQ(model_.state(), ModelState::kUnavailable);
  EXPECT_THAT(model_.Status().reason,
              HasSubstr("latest error: not a state dict"));
  EXPECT_EQ(model_.ReadyOrWhyNot().code(), absl::StatusCode::kUnavailable);

  std::vector<int64_t> again = model_.StartChange(files, false);
  EXPECT_TRUE(again.empty());
  EXPECT_TRUE(model_.Unchanged(files, again)) << "polls leave it alone";
  EXPECT_THAT(model_.StartChange(files, /*force=*/true), ElementsAre(1));

  files.weights_stamps[1] = "200@2";  // New weights.
  EXPECT_THAT(model_.StartChange(files, false), ElementsAre(1));
  ModelFiles reconfigured = Files({1}, /*max_batch_size=*/8);
  EXPECT_THAT(model_.StartChange(reconfigured, false), ElementsAre(1));
}

TEST_F(ModelVersionsTest, FindNamesTheVersionsItKnows) {
  const ModelFiles files = Files({3});
  FailLoads(files, model_.StartChange(files, false));
  EXPECT_EQ(model_.Find(3).status().code(), absl::StatusCode::kUnavailable);
  const absl::Status unknown = model_.Find(4).status();
  EXPECT_EQ(unknown.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(unknown.message()), HasSubstr("versions: 3"));
  EXPECT_EQ(model_.Find(0).status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(ModelVersionsTest, UnreadableFilesKeepNothingThatIsNotLoaded) {
  const absl::Status kept =
      model_.KeepAfterError(absl::InvalidArgumentError("config.pbtxt: bad"));
  EXPECT_EQ(kept.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(kept.message()), HasSubstr("config.pbtxt: bad"));

  ModelFiles empty = Files({});
  empty.versions = absl::NotFoundError("no version directories");
  model_.FinishChange(empty, {});
  EXPECT_THAT(model_.Status().reason, HasSubstr("no version directories"));
  EXPECT_FALSE(model_.Healthy());
}

}  // namespace
}  // namespace segserve
