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

TEST(RepositoryLayoutTest, NothingOutsideTheRepositoryIsOpened) {
  namespace fs = std::filesystem;
  const fs::path base = FreshTestDir("repository_layout");
  const fs::path root = base / "repo";
  WriteFile(root / "m" / "1" / kModelWeightsFile, "");
  WriteFile(base / "outside" / kModelWeightsFile, "secret");
  fs::create_directories(root / "m" / "2");
  fs::create_symlink(base / "outside" / kModelWeightsFile,
                     root / "m" / "2" / kModelWeightsFile);
  fs::create_directory_symlink(base / "outside", root / "m" / "3");
  fs::create_directory_symlink(root / "m" / "1", root / "m" / "4");

  EXPECT_TRUE(CheckInsideRepository(root.string(),
                                    ModelWeightsPath((root / "m").string(), 1))
                  .ok());
  EXPECT_TRUE(CheckInsideRepository(root.string(),
                                    ModelWeightsPath((root / "m").string(), 4))
                  .ok())
      << "a symlink within the repository is fine";
  EXPECT_TRUE(
      CheckInsideRepository(root.string(), (root / "m" / "9").string()).ok())
      << "a missing path is its reader's to report";
  for (int version : {2, 3}) {
    const absl::Status status = CheckInsideRepository(
        root.string(), ModelWeightsPath((root / "m").string(), version));
    EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << version;
    EXPECT_THAT(std::string(status.message()),
                HasSubstr("outside the model repository"));
  }
  EXPECT_EQ(
      CheckInsideRepository(root.string(), (root / ".." / "outside").string())
          .code(),
      absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace segserve
