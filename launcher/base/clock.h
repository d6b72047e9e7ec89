// The one monotonic clock: CLOCK_MONOTONIC, the clock timerfds and the kernel's ktime use, so
// figures from the supervisor, the admission table and the daemon compare with each other.
#pragma once

#include <time.h>

#include <cstdint>

namespace launcher {

// Nanoseconds of CLOCK_MONOTONIC.
inline uint64_t monotonic_ns() {
  struct timespec ts {};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

// A point on that clock `timeout_ms` from now; milliseconds_left() counts down to it (never
// below 0), for poll() timeouts.
class Deadline {
 public:
  explicit Deadline(uint64_t timeout_ms) : end_ns_(monotonic_ns() + timeout_ms * 1'000'000ULL) {}
  int milliseconds_left() const {
    uint64_t now = monotonic_ns();
    if (now >= end_ns_) return 0;
    uint64_t ms = (end_ns_ - now + 999'999ULL) / 1'000'000ULL;
    return ms > 0x7fffffff ? 0x7fffffff : static_cast<int>(ms);
  }
  bool passed() const { return monotonic_ns() >= end_ns_; }

 private:
  uint64_t end_ns_;
};

}  // namespace launcher
