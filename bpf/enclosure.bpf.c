/* The enclosure's eBPF layer, one object with one skeleton: maps (maps.bpf.h) shared by the
 * programs of each mechanism, which live in their own files. */
#include "maps.bpf.h"

#include "egress.bpf.c"
#include "refusals.bpf.c" /* before syscalls.bpf.c, whose sys_exit calls it */
#include "sockets.bpf.c"
#include "unix_sockets.bpf.c" /* before syscalls.bpf.c, whose sys_exit calls it */
#include "syscalls.bpf.c"
#include "tools.bpf.c"

char LICENSE[] SEC("license") = "GPL";
