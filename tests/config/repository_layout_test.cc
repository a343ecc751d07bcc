#include "config/repository_layout.h"

#include <filesystem>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/test_files.h"

namespace segserve {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(RepositoryLayoutTest, ListsNumberedVersionsAscending) {
  const std::filesystem::path dir = FreshTestDir("repository_layout");
  WriteFile(dir / "10" / kModelWeightsFile, "");
  WriteFile(dir / "2" / kModelWeightsFile, "");
  WriteFile(dir / "0" / kModelWeightsFile, "");       // Not positive.
  WriteFile(dir / "latest" / kModelWeightsFile, "");  // Not a number.
  WriteFile(dir / "7", "");                           // A file, not a dir.
  WriteFile(dir / kModelConfigFile, "");
  auto versions = ListModelVersions(dir.string());
  ASSERT_TRUE(versions.ok()) << versions.status();
  EXPECT_THAT(*versions, ElementsAre(2, 10));
  EXPECT_EQ(ModelWeightsPath(dir.string(), 10),
            (dir / "10" / "model.pt").string());
}

TEST(RepositoryLayoutTest, SaysWhatToAddWhenThereIsNoVersion) {
  const std::filesystem::path dir = FreshTestDir("repository_layout");
  WriteFile(dir / kModelConfigFile, "");
  auto versions = ListModelVersions(dir.string());
  EXPECT_EQ(versions.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(versions.status().message(),
              HasSubstr("add <positive integer>/model.pt"));
  EXPECT_EQ(ListModelVersions((dir / "missing").string()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace segserve
