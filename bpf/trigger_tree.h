// The identities of a composition rule's `read` trigger tree, taken when the run is configured:
// the eBPF layer keys every file and directory that is in the tree then, so that a hard link or
// a rename out of it still fires the rule (bpf/syscalls.bpf.c check_read_triggers).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "bpf/enclosure_bpf.h"

namespace bpf {

// A mount's super block device and whether it is an overlay, where stat of a non-directory
// reports its layer's device and the kernel opens the overlay's inode (see bpf::file_key).
struct MountDevice {
  dev_t dev = 0;
  bool overlay = false;
};

// Every mount this process sees, by mount id (/proc/self/mountinfo: "ID PARENT MAJ:MIN ... -
// FSTYPE ...").
std::map<uint64_t, MountDevice> read_mount_table();

// A device number as the kernel keeps it (s_dev: major << 20 | minor), as the eBPF programs see it.
uint64_t kernel_dev(dev_t dev);

// The keys (bpf::file_key's, as the eBPF programs compute them) of every file and directory
// beneath the directory `root` (symbolic links followed for `root` itself only), each identity
// once: a hard link, or a directory reached twice through bind mounts, counts once. Mounts below
// `root` are crossed: what is mounted in the tree is the tree's content. Symbolic links inside
// are neither followed nor keyed (opening one opens its target, which is a trigger only if it
// lies in a trigger tree). Empty when `root` is not a directory (a file trigger is its own key).
// Throws BpfError when the tree holds more than `limit` identities (the message names the tree
// and the count), or when a directory of it cannot be listed: never a partial answer.
std::vector<FileKey> trigger_tree_keys(const std::string& root, size_t limit);

}  // namespace bpf
