// The smallest useful program: counts getppid() calls of one process. It proves the BPF
// toolchain (vmlinux.h, clang -target bpf, skeleton, libbpf load and attach) end to end, and
// `enclosure doctor` uses it to check that tracepoint programs load on this host.
#include "vmlinux.h"

#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

const volatile __u32 target_tgid = 0;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} probe_counts SEC(".maps");

// tp_btf needs no tracefs mount (plain tracepoint programs look their ids up there).
SEC("tp_btf/sys_enter")
int BPF_PROG(count_getppid, struct pt_regs *regs, long id)
{
	if (id != 110 /* __NR_getppid on x86_64 */)
		return 0;
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (tgid != target_tgid)
		return 0;
	__u32 key = 0;
	__u64 *count = bpf_map_lookup_elem(&probe_counts, &key);
	if (count)
		__sync_fetch_and_add(count, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
