// Durations ("300ms", "90s", "5m", "2h") and sizes ("512KiB", "2GiB") as the manifest writes them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace policy {

// A value or the reason it could not be read; the reason completes "expected ..., got X".
template <class T>
struct Parsed {
  std::optional<T> value;
  std::string error;
  explicit operator bool() const { return value.has_value(); }
};

// Positive integer followed by one of ns, us, ms, s, m, h, d. Result in nanoseconds.
Parsed<uint64_t> parse_duration(std::string_view text);
// Non-negative integer followed by B, KiB, MiB, GiB, TiB (powers of 1024) or kB, MB, GB, TB
// (powers of 1000). Result in bytes.
Parsed<uint64_t> parse_size(std::string_view text);

// The shortest exact rendering: 300000000 ns -> "300ms", 90 s -> "90s", 3600 s -> "1h".
std::string format_duration(uint64_t nanoseconds);
// Exact when possible ("2GiB"), else bytes ("1000001B").
std::string format_size(uint64_t bytes);
// Micro-dollars as "$0.005000" style text with trailing zeros trimmed ("$0.005").
std::string format_usd(uint64_t micro_usd);

}  // namespace policy
