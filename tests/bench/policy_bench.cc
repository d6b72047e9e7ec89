// policy_bench: parse + validate + compile of a manifest with 1,000 egress rules and 1,000
// paths, repeated; prints the median time per iteration in microseconds.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "policy/compile.h"
#include "policy/load.h"

int main(int argc, char** argv) {
  int iterations = argc > 1 ? std::atoi(argv[1]) : 50;
  nlohmann::json m = {{"apiVersion", "enclosure/v1"},
                      {"metadata", {{"name", "bench"}}},
                      {"tools", {{{"name", "python3"}, {"path", "/usr/bin/python3"}}}},
                      {"network", {{"mode", "filtered"}, {"egress", nlohmann::json::array()}}}};
  for (int i = 0; i < 1000; ++i) {
    m["network"]["egress"].push_back(
        {{"cidr", "10." + std::to_string(i / 250) + "." + std::to_string(i % 250) + ".0/24"},
         {"ports", {443, "8000-8100"}}});
  }
  for (int i = 0; i < 500; ++i) {
    m["filesystem"]["read"].push_back("/data/read/" + std::to_string(i));
    m["filesystem"]["write"].push_back("/data/write/" + std::to_string(i));
  }
  std::string text = m.dump(2);
  std::vector<double> times;
  for (int i = 0; i < iterations; ++i) {
    auto start = std::chrono::steady_clock::now();
    policy::LoadResult r = policy::load_manifest(text);
    if (!r.manifest) {
      std::fprintf(stderr, "bench manifest invalid: %s\n",
                   r.diagnostics.errors()[0].message.c_str());
      return 1;
    }
    policy::CompileResult c = policy::compile(*r.manifest);
    if (!c.plan) return 1;
    times.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start)
            .count());
  }
  std::sort(times.begin(), times.end());
  std::printf("%.0f\n", times[times.size() / 2]);
  return 0;
}
