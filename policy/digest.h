// Canonical JSON of a manifest and its SHA-256 digest (policy/MANIFEST.md, "Deterministic digest").
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace policy {

// Keys sorted by their UTF-8 bytes, no insignificant white space, strings escaped as JSON
// requires and nothing more, numbers in their shortest round-trip form.
std::string canonical_json(const nlohmann::json& document);

// Lower-case hex SHA-256 of the bytes (OpenSSL libcrypto).
std::string sha256_hex(std::string_view bytes);

// "sha256:" + sha256_hex(canonical_json(document)).
std::string manifest_digest(const nlohmann::json& document);

}  // namespace policy
