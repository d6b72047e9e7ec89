// Kernel tests need root. Outside CI a non-root run skips them with a message; with CI=true a
// missing privilege is a failure, so that a CI run can never pass by skipping.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <iostream>

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  const char* ci = std::getenv("CI");
  bool in_ci = ci && std::strcmp(ci, "true") == 0;
  bool listing = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strstr(argv[i], "gtest_list_tests")) listing = true;
  }
  if (geteuid() != 0 && !listing) {
    if (in_ci) {
      std::cerr << "kernel tests: CI=true but not running as root; kernel tests must run\n";
      return 1;
    }
    std::cerr << "kernel tests: not root; skipped (run as root, as CI does)\n";
    return 0;
  }
  return RUN_ALL_TESTS();
}
