#include "policy/digest.h"

#include <openssl/evp.h>

#include <cmath>
#include <cstdint>
#include <stdexcept>

namespace policy {

namespace {

// A number written with a fraction or exponent that holds a whole value ("3.0", "1e2", "-0.0")
// is the same number as its integer spelling; both must give one canonical text. Integral
// values that a double represents exactly (|x| <= 2^53) are rewritten as integers.
void normalise_numbers(nlohmann::json& node) {
  if (node.is_number_float()) {
    double x = node.get<double>();
    constexpr double kExact = 9007199254740992.0;  // 2^53
    if (std::isfinite(x) && std::trunc(x) == x && std::fabs(x) <= kExact) {
      if (x >= 0) {
        node = static_cast<uint64_t>(x);
      } else {
        node = static_cast<int64_t>(x);
      }
    }
  } else if (node.is_object() || node.is_array()) {
    for (auto& child : node) {
      normalise_numbers(child);
    }
  }
}

}  // namespace

std::string canonical_json(const nlohmann::json& document) {
  nlohmann::json copy = document;
  normalise_numbers(copy);
  // nlohmann::json keeps object members in a std::map, so dump() writes keys in byte order.
  return copy.dump(-1, ' ', false, nlohmann::json::error_handler_t::strict);
}

std::string sha256_hex(std::string_view bytes) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  // Fetched once: EVP_sha256() makes every EVP_Digest fetch the implementation again.
  static EVP_MD* const sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  if (!sha256 || EVP_Digest(bytes.data(), bytes.size(), md, &len, sha256, nullptr) != 1) {
    throw std::runtime_error("SHA-256 failed in libcrypto");
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 0xf]);
  }
  return out;
}

std::string manifest_digest(const nlohmann::json& document) {
  return "sha256:" + sha256_hex(canonical_json(document));
}

}  // namespace policy
