/* The enclosure's eBPF layer, one object with one skeleton: maps (maps.bpf.h) shared by the
 * programs of each mechanism, which live in their own files. */
#include "maps.bpf.h"

#include "egress.bpf.c"
#include "sockets.bpf.c"
#include "syscalls.bpf.c"
#include "tools.bpf.c"

char LICENSE[] SEC("license") = "GPL";
