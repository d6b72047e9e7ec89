// Fuzz target: what any local user can send to `enclosure daemon` (launcher/daemon/protocol.h):
// a request payload through the decoder, and what it decodes to back through the encoder, which
// must give the same request again. The same bytes also go through the reply and state-file
// decoders the launcher and the daemon use. Nothing may crash, leak or hit UB.
#include <cstddef>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "launcher/daemon/protocol.h"

namespace {

template <class T>
void decode_and_reencode(const nlohmann::json& j) {
  std::string error;
  std::optional<T> value = T::from_json(j, error);
  if (!value) return;
  nlohmann::json again = value->to_json();
  std::optional<T> back = T::from_json(nlohmann::json::parse(again.dump()), error);
  if (!back || back->to_json() != again) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  nlohmann::json j =
      nlohmann::json::parse(reinterpret_cast<const char*>(data),
                            reinterpret_cast<const char*>(data) + size, nullptr, false);
  if (j.is_discarded()) return 0;
  std::string error;
  if (std::optional<launcher::DaemonRequest> request = launcher::request_from_json(j, error)) {
    // Encoded and decoded again, a request is what it was.
    nlohmann::json encoded = launcher::to_json(*request);
    std::optional<launcher::DaemonRequest> back =
        launcher::request_from_json(nlohmann::json::parse(encoded.dump()), error);
    if (!back || back->index() != request->index() || launcher::to_json(*back) != encoded) {
      __builtin_trap();
    }
  } else if (error.empty()) {
    __builtin_trap();  // every refusal says why
  }
  decode_and_reencode<launcher::HelloReply>(j);
  decode_and_reencode<launcher::RunReply>(j);
  decode_and_reencode<launcher::CountersReply>(j);
  decode_and_reencode<launcher::RulesFiredReply>(j);
  decode_and_reencode<launcher::KillReply>(j);
  decode_and_reencode<launcher::RefusalReply>(j);
  decode_and_reencode<launcher::RunState>(j);
  return 0;
}
