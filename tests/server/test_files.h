#ifndef SEGSERVE_TESTS_SERVER_TEST_FILES_H_
#define SEGSERVE_TESTS_SERVER_TEST_FILES_H_

#include <filesystem>
#include <fstream>
#include <string>

#include "gtest/gtest.h"

namespace segserve {

// Writes `text` to `path`, creating its directories.
inline void WriteFile(const std::filesystem::path& path,
                      const std::string& text) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path) << text;
}

// A fresh, empty directory for the running test: <tmp>/<group>/<test name>.
inline std::filesystem::path FreshTestDir(const std::string& group) {
  const std::filesystem::path dir =
      std::filesystem::path(::testing::TempDir()) / group /
      ::testing::UnitTest::GetInstance()->current_test_info()->name();
  std::filesystem::remove_all(dir);
  return dir;
}

}  // namespace segserve

#endif  // SEGSERVE_TESTS_SERVER_TEST_FILES_H_
