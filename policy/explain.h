// `enclosure explain`: a plain-language account of every permission and budget, for review.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "policy/manifest.h"

namespace policy {

// Structured account (the --json output); the text form is rendered from it.
nlohmann::json explain_json(const Manifest& manifest);
std::string explain_text(const Manifest& manifest);

}  // namespace policy
