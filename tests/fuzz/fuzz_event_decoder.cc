// Fuzz target: ring-buffer records (kernel memory, never trusted) through the decoder, their
// conversion into events, and the JSON Lines encoder.
#include <cstddef>
#include <cstdint>

#include "bpf/event_decoder.h"
#include "launcher/events/event.h"
#include "launcher/events/kernel_events.h"
#include "policy/compile.h"
#include "policy/load.h"

namespace {

const policy::EnforcementPlan& plan() {
  static const policy::EnforcementPlan p = [] {
    auto r = policy::load_manifest(R"({"apiVersion":"enclosure/v1","metadata":{"name":"fuzz"},
      "tools":[{"name":"git","path":"/usr/bin/git","max_calls":3,"cost_usd":0.01}],
      "network":{"mode":"filtered","egress":[{"cidr":"127.0.0.1/32","ports":[80]}]},
      "budgets":{"syscalls":1000,"cost_usd":1}})");
    return *policy::compile(*r.manifest).plan;
  }();
  return p;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string error;
  std::optional<bpf::DecodedRecord> r = bpf::decode_record(data, size, error);
  if (!r) return 0;
  launcher::RunIdentity id{"0123456789abcdef0123456789abcdef", "fuzz", 1, "sha256:0"};
  launcher::EventStream stream(id);
  for (const launcher::KernelEvent& e : launcher::kernel_events(*r, plan())) {
    nlohmann::ordered_json ev = stream.emit(e.type, e.pid, e.fields);
    (void)launcher::encode_event(ev);
  }
  return 0;
}
