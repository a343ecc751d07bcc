#ifndef SEGSERVE_TESTS_MODEL_SEGTOOL_RUNNER_H_
#define SEGSERVE_TESTS_MODEL_SEGTOOL_RUNNER_H_

#include <sys/wait.h>

#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"

namespace segserve {
namespace testing_util {

struct SegtoolResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr.
};

// Runs the segtool binary (SEGTOOL_PATH, set by the test's CMake target)
// with `arguments` through the shell.
inline SegtoolResult RunSegtool(const std::string& arguments) {
  const std::string command =
      absl::StrCat(SEGTOOL_PATH, " ", arguments, " 2>&1");
  SegtoolResult result;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return result;
  char buffer[4096];
  size_t read;
  while ((read = fread(buffer, 1, sizeof(buffer), pipe)) > 0) {
    result.output.append(buffer, read);
  }
  const int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

}  // namespace testing_util
}  // namespace segserve

#endif  // SEGSERVE_TESTS_MODEL_SEGTOOL_RUNNER_H_
