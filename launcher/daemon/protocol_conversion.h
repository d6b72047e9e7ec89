// The protocol's plain mirrors (launcher/daemon/protocol.h) of the eBPF and cgroup types, to and
// from the types themselves. Not part of the pure protocol library: these types come with libbpf
// and the cgroup code.
#pragma once

#include "bpf/enclosure_bpf.h"
#include "launcher/daemon/protocol.h"
#include "launcher/run/cgroup.h"

namespace launcher {

ProtocolNeeds to_protocol(const bpf::LayerNeeds& needs);
ProtocolFiles to_protocol(const bpf::EnclosureFiles& files);
ProtocolLimits to_protocol(const CgroupLimits& limits);
ProtocolCgroup to_protocol(const CgroupDirectories& dirs);

// The ring size is the daemon's, not the request's: left at its default.
bpf::LayerNeeds to_bpf(const ProtocolNeeds& needs);
bpf::EnclosureFiles to_bpf(const ProtocolFiles& files);
CgroupLimits to_cgroup(const ProtocolLimits& limits);
CgroupDirectories to_cgroup(const ProtocolCgroup& cgroup);

}  // namespace launcher
