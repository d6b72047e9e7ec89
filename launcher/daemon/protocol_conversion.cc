#include "launcher/daemon/protocol_conversion.h"

namespace launcher {

ProtocolNeeds to_protocol(const bpf::LayerNeeds& needs) {
  ProtocolNeeds n;
  n.egress = needs.egress;
  n.egress_bytes = needs.egress_bytes;
  n.exec = needs.exec;
  n.sys_enter = needs.sys_enter;
  n.sys_exit = needs.sys_exit;
  n.behaviour = needs.behaviour;
  return n;
}

ProtocolFiles to_protocol(const bpf::EnclosureFiles& files) {
  ProtocolFiles f;
  f.script_tools = files.script_tools;
  f.loaders = files.loaders;
  for (const auto& [path, key] : files.keys)
    f.keys[path] = {key.dev, key.ino};
  for (const auto& [path, tree] : files.trigger_trees) {
    std::vector<ProtocolFileKey>& keys = f.trigger_trees[path];
    keys.reserve(tree.size());
    for (const bpf::FileKey& key : tree)
      keys.push_back({key.dev, key.ino});
  }
  return f;
}

ProtocolLimits to_protocol(const CgroupLimits& limits) {
  return {limits.pids_max, limits.memory_max};
}

ProtocolCgroup to_protocol(const CgroupDirectories& dirs) {
  ProtocolCgroup c;
  c.v2 = dirs.v2;
  c.v1 = dirs.v1;
  c.placement_pids = dirs.placement.pids;
  c.placement_memory = dirs.placement.memory;
  c.limits = to_protocol(dirs.limits);
  return c;
}

bpf::LayerNeeds to_bpf(const ProtocolNeeds& needs) {
  bpf::LayerNeeds n;
  n.egress = needs.egress;
  n.egress_bytes = needs.egress_bytes;
  n.exec = needs.exec;
  n.sys_enter = needs.sys_enter;
  n.sys_exit = needs.sys_exit;
  n.behaviour = needs.behaviour;
  return n;
}

bpf::EnclosureFiles to_bpf(const ProtocolFiles& files) {
  bpf::EnclosureFiles f;
  f.script_tools = files.script_tools;
  f.loaders = files.loaders;
  for (const auto& [path, key] : files.keys)
    f.keys[path] = {key.dev, key.ino};
  for (const auto& [path, tree] : files.trigger_trees) {
    std::vector<bpf::FileKey>& keys = f.trigger_trees[path];
    keys.reserve(tree.size());
    for (const ProtocolFileKey& key : tree)
      keys.push_back({key.dev, key.ino});
  }
  return f;
}

CgroupLimits to_cgroup(const ProtocolLimits& limits) {
  CgroupLimits l;
  l.pids_max = limits.pids_max;
  l.memory_max = limits.memory_max;
  return l;
}

CgroupDirectories to_cgroup(const ProtocolCgroup& cgroup) {
  CgroupDirectories d;
  d.v2 = cgroup.v2;
  d.v1 = cgroup.v1;
  d.placement.pids = cgroup.placement_pids;
  d.placement.memory = cgroup.placement_memory;
  d.limits = to_cgroup(cgroup.limits);
  return d;
}

}  // namespace launcher
