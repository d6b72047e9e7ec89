// Loads and attaches bpf/probe.bpf.c: a getppid counter for one process (toolchain check).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>

struct probe_bpf;

namespace bpf {

class GetppidProbe {
 public:
  // Opens, loads and attaches the program for `tgid`; throws std::runtime_error with libbpf's
  // reason when any step fails.
  explicit GetppidProbe(pid_t tgid);
  ~GetppidProbe();
  GetppidProbe(const GetppidProbe&) = delete;
  GetppidProbe& operator=(const GetppidProbe&) = delete;

  uint64_t count() const;

 private:
  probe_bpf* skeleton_ = nullptr;
};

}  // namespace bpf
