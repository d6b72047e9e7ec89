#include <gtest/gtest.h>

#include "policy/load.h"

TEST(Sanity, MinimalManifestLoads) {
  auto r = policy::load_manifest(R"({"apiVersion":"enclosure/v1","metadata":{"name":"m"},
    "tools":[{"name":"true","path":"/bin/true"}]})");
  for (auto& d : r.diagnostics.errors())
    ADD_FAILURE() << d.path << ": " << d.message;
  ASSERT_TRUE(r.manifest);
  EXPECT_EQ(r.manifest->metadata.name, "m");
}
