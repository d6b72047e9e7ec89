#include "policy/units.h"

#include <array>
#include <limits>
#include <utility>

namespace policy {
namespace {

// Splits "123unit" into digits and unit; fails on signs, spaces, fractions and empty parts.
bool split_number_unit(std::string_view text, uint64_t& number, std::string_view& unit) {
  size_t i = 0;
  number = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
    uint64_t digit = static_cast<uint64_t>(text[i] - '0');
    if (number > (std::numeric_limits<uint64_t>::max() - digit) / 10) return false;
    number = number * 10 + digit;
    ++i;
  }
  if (i == 0) return false;
  unit = text.substr(i);
  return true;
}

}  // namespace

Parsed<uint64_t> parse_duration(std::string_view text) {
  static constexpr std::array<std::pair<std::string_view, uint64_t>, 7> kUnits{{
      {"ns", 1ULL},
      {"us", 1000ULL},
      {"ms", 1000ULL * 1000},
      {"s", 1000ULL * 1000 * 1000},
      {"m", 60ULL * 1000 * 1000 * 1000},
      {"h", 3600ULL * 1000 * 1000 * 1000},
      {"d", 86400ULL * 1000 * 1000 * 1000},
  }};
  uint64_t number = 0;
  std::string_view unit;
  if (!split_number_unit(text, number, unit) || unit.empty()) {
    return {std::nullopt, "a duration such as \"300ms\", \"90s\", \"5m\" or \"2h\""};
  }
  for (const auto& [name, factor] : kUnits) {
    if (unit != name) continue;
    if (number == 0) return {std::nullopt, "a duration greater than zero"};
    if (number > std::numeric_limits<uint64_t>::max() / factor) {
      return {std::nullopt, "a duration of at most 500 years"};
    }
    return {number * factor, {}};
  }
  return {std::nullopt, "a duration unit ns, us, ms, s, m, h or d"};
}

Parsed<uint64_t> parse_size(std::string_view text) {
  static constexpr std::array<std::pair<std::string_view, uint64_t>, 9> kUnits{{
      {"B", 1ULL},
      {"KiB", 1ULL << 10},
      {"MiB", 1ULL << 20},
      {"GiB", 1ULL << 30},
      {"TiB", 1ULL << 40},
      {"kB", 1000ULL},
      {"MB", 1000ULL * 1000},
      {"GB", 1000ULL * 1000 * 1000},
      {"TB", 1000ULL * 1000 * 1000 * 1000},
  }};
  uint64_t number = 0;
  std::string_view unit;
  if (!split_number_unit(text, number, unit) || unit.empty()) {
    return {std::nullopt, "a size such as \"512KiB\" or \"2GiB\""};
  }
  for (const auto& [name, factor] : kUnits) {
    if (unit != name) continue;
    if (number > std::numeric_limits<uint64_t>::max() / factor) {
      return {std::nullopt, "a size below 16EiB"};
    }
    return {number * factor, {}};
  }
  return {std::nullopt, "a size unit B, KiB, MiB, GiB, TiB, kB, MB, GB or TB"};
}

std::string format_duration(uint64_t ns) {
  static constexpr std::array<std::pair<const char*, uint64_t>, 7> kUnits{{
      {"d", 86400ULL * 1000 * 1000 * 1000},
      {"h", 3600ULL * 1000 * 1000 * 1000},
      {"m", 60ULL * 1000 * 1000 * 1000},
      {"s", 1000ULL * 1000 * 1000},
      {"ms", 1000ULL * 1000},
      {"us", 1000ULL},
      {"ns", 1ULL},
  }};
  if (ns == 0) return "0s";
  for (const auto& [name, factor] : kUnits) {
    if (ns % factor == 0) return std::to_string(ns / factor) + name;
  }
  return std::to_string(ns) + "ns";
}

std::string format_size(uint64_t bytes) {
  static constexpr std::array<std::pair<const char*, uint64_t>, 4> kUnits{{
      {"TiB", 1ULL << 40},
      {"GiB", 1ULL << 30},
      {"MiB", 1ULL << 20},
      {"KiB", 1ULL << 10},
  }};
  for (const auto& [name, factor] : kUnits) {
    if (bytes != 0 && bytes % factor == 0) return std::to_string(bytes / factor) + name;
  }
  return std::to_string(bytes) + "B";
}

std::string format_usd(uint64_t micro_usd) {
  std::string whole = std::to_string(micro_usd / 1000000);
  std::string frac = std::to_string(micro_usd % 1000000);
  frac.insert(0, 6 - frac.size(), '0');
  while (frac.size() > 2 && frac.back() == '0')
    frac.pop_back();
  return "$" + whole + "." + frac;
}

}  // namespace policy
