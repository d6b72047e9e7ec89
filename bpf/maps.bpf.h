/* Maps and helpers shared by the enclosure's BPF programs (included by enclosure.bpf.c). */
#ifndef ENCLOSURE_MAPS_BPF_H
#define ENCLOSURE_MAPS_BPF_H

#include "vmlinux.h"

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "enclosure_abi.h"

#define MAX_ENCLOSURES 4096

/* Set by the loader before load: the number of possible CPUs (for per-CPU sums). */
const volatile __u32 nr_cpus = 1;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_ENCLOSURES);
	__type(key, __u64);
	__type(value, struct enc_config);
} configs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_ENCLOSURES);
	__type(key, __u64);
	__type(value, struct enc_state);
} states SEC(".maps");

/* Two ring buffers: bulk records (exec, connect, open) and decisions (denials, budgets), so that
 * a flood of the first kind can never crowd out the second. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20); /* resized by the loader */
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 18); /* resized by the loader */
} decisions SEC(".maps");

/* Metered usage the agent reported (micro-dollars), written by the supervisor alone. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_ENCLOSURES);
	__type(key, __u64);
	__type(value, __u64);
} reported_costs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct enc_lpm4_key);
	__type(value, struct enc_ports);
} egress4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct enc_lpm6_key);
	__type(value, struct enc_ports);
} egress6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_ENCLOSURES * 8);
	__type(key, struct enc_tool_key);
	__type(value, __u32);
} tools SEC(".maps");

/* Script tools by absolute path: at sched_process_exec the script's file is already replaced by
 * its interpreter, so a script is recognised by the path it was executed by. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_ENCLOSURES * 4);
	__type(key, struct enc_script_key);
	__type(value, __u32);
} script_tools SEC(".maps");

/* Tree tools: (enclosure, device, inode) of a tree tool's directory -> its tool index; every
 * regular file executed beneath it is that tool. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_ENCLOSURES * 4);
	__type(key, struct enc_tool_key);
	__type(value, __u32);
} tree_tools SEC(".maps");

/* ELF interpreters (dynamic loaders) of the tools: executable only as interpreters. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_ENCLOSURES * 2);
	__type(key, struct enc_tool_key);
	__type(value, __u32);
} loaders SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct enc_script_key);
} script_scratch SEC(".maps");

/* Composition rule triggers on files: (enclosure, device, inode) of every file and directory of
 * a trigger tree when the run was configured, its root included -> the rules (bits) that opening
 * it, or anything beneath it, fires. A hard link or a rename keeps the inode, so a file moved or
 * linked out of the tree still fires. One more entry per enclosure, at device 0 and inode 0 (no
 * file's identity), holds every rule with a read trigger: what an open fires when the ancestors
 * of the opened file could not all be walked (check_read_triggers). The launcher caps each run's
 * entries (bpf::kMaxReadTriggerFiles), so that several runs at the cap fit. */
#define ENC_READ_TRIGGER_ENTRIES (1 << 20)

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, ENC_READ_TRIGGER_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct enc_tool_key);
	__type(value, __u64);
} read_triggers SEC(".maps");

/* Where each redirected socket's DNS traffic was really going, for the replies' source. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct enc_dns_origin);
} dns_origins SEC(".maps");

/* The per-CPU syscall meters (enc_syscall_batch) of the enclosures that count syscalls, and of
 * no other: a task whose cgroup has none counts nothing. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, MAX_ENCLOSURES);
	__type(key, __u64);
	__type(value, struct enc_syscall_batch);
} syscall_batches SEC(".maps");

struct syscall_histogram {
	__u64 counts[ENC_SYSCALL_SLOTS];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 256);
	__type(key, __u64);
	__type(value, struct syscall_histogram);
} histograms SEC(".maps");

/* Whether any enclosure counts syscalls (a syscall budget, the histogram of audit.syscalls or of
 * a baseline): entry 0 is 1 while one does. Without, sys_exit returns at once for every syscall
 * that is neither a refusal nor one its other duties need (syscalls.bpf.c). The loader sets it
 * when it configures such an enclosure, and clears it when it forgets the last one
 * (EnclosureBpf::refresh_syscall_counting). A map, not a global variable, so that it is pinned
 * and shared with the maps (a daemon's successor, whose predecessor's programs stay attached).
 * An array lookup of a constant key is inlined by the verifier: a load, no call. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} syscall_counting SEC(".maps");

/* audit.files: every (enclosure, file, access mode) opened and how often (enc_open_key in
 * enclosure_abi.h). Bounded twice: a run keys at most ENC_FILE_OPENS_PER_RUN (then its opens are
 * records one by one, counted in enc_state.opens_unkeyed), and the map holds
 * ENC_FILE_OPENS_ENTRIES for all runs (when full, the same). Entries are allocated as keys come
 * (about 330 bytes each), and removed with the run (EnclosureBpf::forget). */
#define ENC_FILE_OPENS_ENTRIES (MAX_ENCLOSURES * 16)

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, ENC_FILE_OPENS_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct enc_open_key);
	__type(value, struct enc_open_count);
} file_opens SEC(".maps");

/* Scratch space for a first open's count and path (too large for the 512-byte stack). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct enc_open_count);
} open_scratch SEC(".maps");

static __always_inline struct enc_state *state_of(__u64 cgid)
{
	return bpf_map_lookup_elem(&states, &cgid);
}

/* Reserves a record of `size` bytes for enclosure `cgid` and fills its header; counts the
 * attempt, and the loss when the ring buffer is full. */
static __always_inline void *reserve_record(struct enc_state *st, __u64 cgid, __u32 type,
					    __u32 size)
{
	__u64 seq = __sync_fetch_and_add(&st->records, 1);
	int decision = type == ENC_EV_NET_DENY || type == ENC_EV_BUDGET ||
		       type == ENC_EV_EGRESS_DROP || type == ENC_EV_RULE ||
		       type == ENC_EV_UNIX_DENY;
	struct enc_header *h = decision ? bpf_ringbuf_reserve(&decisions, size, 0) :
					  bpf_ringbuf_reserve(&events, size, 0);
	if (!h) {
		__sync_fetch_and_add(&st->lost, 1);
		return NULL;
	}
	__u64 id = bpf_get_current_pid_tgid();
	h->type = type;
	h->size = size;
	h->cgroup_id = cgid;
	h->kseq = seq;
	h->ktime_ns = bpf_ktime_get_boot_ns();
	h->pid = id >> 32;
	h->tid = (__u32)id;
	return h;
}

/* Marks a budget exceeded (once) and reports it. Returns 1 the first time. */
static __always_inline int report_budget(struct enc_state *st, __u64 cgid, __u32 budget, __s32 tool,
					 __u64 limit, __u64 value)
{
	__u64 bit = 1ULL << budget;
	__u64 before = __sync_fetch_and_or(&st->exceeded, bit);
	if (before & bit)
		return 0;
	struct enc_budget_event *e = reserve_record(st, cgid, ENC_EV_BUDGET, sizeof(*e));
	if (e) {
		e->budget = budget;
		e->tool = tool;
		e->limit = limit;
		e->value = value;
		bpf_ringbuf_submit(e, 0);
	}
	return 1;
}

/* The index of the lowest set bit (BPF has no count-trailing-zeros instruction). */
static __always_inline __u32 lowest_bit(__u64 x)
{
	for (__u32 i = 0; i < 64; i++) {
		if (x & (1ULL << i))
			return i;
	}
	return 64;
}

/* Fires composition rules `bits` (those not fired yet) and reports each. */
static __always_inline void fire_rules(struct enc_state *st, __u64 cgid, __u64 bits, __u32 trigger,
				       __s32 tool, __u32 egress_rule, __u32 family, __u16 port,
				       const __u32 *addr, const char *path_kernel)
{
	__u64 before = __sync_fetch_and_or(&st->rules_fired, bits);
	__u64 fresh = bits & ~before;
	for (int i = 0; i < ENC_MAX_RULES; i++) {
		if (!(fresh & (1ULL << i)))
			continue;
		struct enc_rule_event *e = reserve_record(st, cgid, ENC_EV_RULE, sizeof(*e));
		if (!e)
			continue;
		e->rule = i;
		e->trigger = trigger;
		e->tool = tool;
		e->egress_rule = egress_rule;
		e->port = port;
		e->pad = 0;
		e->family = family;
		e->pad2 = 0;
		__builtin_memset(e->addr, 0, sizeof(e->addr));
		if (addr)
			__builtin_memcpy(e->addr, addr, 16);
		e->path[0] = 0;
		if (path_kernel)
			bpf_probe_read_kernel_str(e->path, sizeof(e->path), path_kernel);
		bpf_ringbuf_submit(e, 0);
	}
}

/* ---- file identity ------------------------------------------------------------------------ */

/* A file (a tool, an ELF interpreter, a read trigger or one of its ancestors) is keyed by the
 * device and inode number that stat() reports for it in the launcher's view, which resolves the
 * keys (bpf::file_key). For the inode of the file the kernel executes or opens that is:
 *  - i_ino, on every file system (stat's st_ino is the inode's i_ino, overlayfs included);
 *  - the super block's s_dev, except on btrfs: each subvolume there is an inode number space of
 *    its own (every subvolume's root directory is inode 256, its first file 257), and stat
 *    reports the subvolume's anonymous device (btrfs_getattr: BTRFS_I(inode)->root->anon_dev),
 *    not the super block's. Keyed by the super block alone, a tool in a subvolume would never
 *    be recognised, and files of two subvolumes would share keys: the subvolume's device is
 *    read here, so that the key is unique and what stat reports.
 * Overlayfs is the other way round: the executed and opened file is the overlay's inode (its
 * s_dev, its i_ino), while stat of a non-directory whose layers are on different file systems
 * (without xino) reports the layer's pseudo device; the launcher uses the overlay's own device
 * there (bpf::file_key), which is exact, where mapping back to a layer here would follow
 * overlayfs' private structures.
 * struct btrfs_inode is btrfs' own (in a module's BTF when btrfs is a module): read through
 * CO-RE with local definitions, and when the kernel has no such type the super block's device
 * is kept (the launcher then reports nothing false: the tools there are simply not recognised,
 * as before this mapping). */
#define ENC_BTRFS_SUPER_MAGIC 0x9123683EUL

struct btrfs_root___enc {
	dev_t anon_dev;
} __attribute__((preserve_access_index));

struct btrfs_inode___enc {
	struct btrfs_root___enc *root;
	struct inode vfs_inode;
} __attribute__((preserve_access_index));

static __always_inline void inode_key(struct enc_tool_key *key, __u64 cgid, struct inode *inode)
{
	struct super_block *sb = BPF_CORE_READ(inode, i_sb);
	key->cgroup_id = cgid;
	key->dev = BPF_CORE_READ(sb, s_dev);
	key->ino = BPF_CORE_READ(inode, i_ino);
	if (BPF_CORE_READ(sb, s_magic) != ENC_BTRFS_SUPER_MAGIC)
		return;
	if (!bpf_core_field_exists(struct btrfs_inode___enc, root) ||
	    !bpf_core_field_exists(struct btrfs_inode___enc, vfs_inode) ||
	    !bpf_core_field_exists(struct btrfs_root___enc, anon_dev))
		return;
	/* container_of(inode, struct btrfs_inode, vfs_inode) */
	struct btrfs_inode___enc *bi =
		(void *)((char *)inode -
			 bpf_core_field_offset(struct btrfs_inode___enc, vfs_inode));
	dev_t anon_dev = BPF_CORE_READ(bi, root, anon_dev);
	if (anon_dev)
		key->dev = anon_dev;
}

/* The open file behind descriptor `fd` of the current task, or NULL. */
static __always_inline struct file *file_of_fd(long fd)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct file **fds = BPF_CORE_READ(task, files, fdt, fd);
	unsigned int max = BPF_CORE_READ(task, files, fdt, max_fds);
	if (fd < 0 || fd >= max)
		return NULL;
	struct file *f = 0;
	if (bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]))
		return NULL;
	return f;
}

#endif /* ENCLOSURE_MAPS_BPF_H */
