#include "policy/digest.h"

#include <openssl/evp.h>

#include <stdexcept>

namespace policy {

std::string canonical_json(const nlohmann::json& document) {
  // nlohmann::json keeps object members in a std::map, so dump() writes keys in byte order.
  return document.dump(-1, ' ', false, nlohmann::json::error_handler_t::strict);
}

std::string sha256_hex(std::string_view bytes) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), md, &len, EVP_sha256(), nullptr) != 1) {
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
