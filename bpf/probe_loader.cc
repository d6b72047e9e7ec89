#include "bpf/probe_loader.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "probe.skel.h"

namespace bpf {

GetppidProbe::GetppidProbe(pid_t tgid) {
  skeleton_ = probe_bpf__open();
  if (!skeleton_) {
    throw std::runtime_error(std::string("bpf probe: open failed: ") + std::strerror(errno));
  }
  skeleton_->rodata->target_tgid = static_cast<__u32>(tgid);
  if (int err = probe_bpf__load(skeleton_); err) {
    probe_bpf__destroy(skeleton_);
    throw std::runtime_error(std::string("bpf probe: load (verifier) failed: ") +
                             std::strerror(-err));
  }
  if (int err = probe_bpf__attach(skeleton_); err) {
    probe_bpf__destroy(skeleton_);
    throw std::runtime_error(std::string("bpf probe: attach to tp_btf/sys_enter failed: ") +
                             std::strerror(-err));
  }
}

GetppidProbe::~GetppidProbe() {
  probe_bpf__destroy(skeleton_);
}

uint64_t GetppidProbe::count() const {
  uint32_t key = 0;
  uint64_t value = 0;
  if (bpf_map__lookup_elem(skeleton_->maps.probe_counts, &key, sizeof key, &value, sizeof value,
                           0)) {
    throw std::runtime_error(std::string("bpf probe: map lookup failed: ") + std::strerror(errno));
  }
  return value;
}

}  // namespace bpf
