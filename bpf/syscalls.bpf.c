/* Syscall accounting on tp_btf/sys_enter and sys_exit: the syscall budget (per-CPU batches added
 * atomically to the enclosure's total, so no lock and a bounded overshoot), the per-syscall
 * histogram for audit.syscalls, and the file-access log for audit.files (an open family call's
 * path and flags read at entry, its result at exit). sys_exit also reports the agent's refused file
 * and exec syscalls (refusals.bpf.c), so every enclosure needs it. These programs run on every
 * syscall of the host while attached, so the loader attaches them only while an enclosure needs
 * them; a foreign task costs one cgroup id and one hash lookup.
 * Included by enclosure.bpf.c. */
#include "maps.bpf.h"

#define NR_OPEN 2
#define NR_CREAT 85
#define NR_OPENAT 257
#define NR_OPENAT2 437
#define SIGKILL_ 9
#define O_CREAT_WRONLY_TRUNC (0100 | 01 | 01000)
#define O_PATH_ 010000000
#define FMODE_READ_ 0x1
#define S_IFMT_ 0170000
#define S_IFDIR_ 0040000

static __always_inline void count_syscall(struct enc_config *cfg, struct enc_state *st, __u64 cgid)
{
	/* Past the budget, every further syscall of the enclosure kills its caller at once. */
	if (st->exceeded & (1ULL << ENC_BUDGET_SYSCALLS)) {
		bpf_send_signal(SIGKILL_);
		return;
	}
	__u64 *batch = bpf_map_lookup_elem(&syscall_batches, &cgid);
	if (!batch) {
		__u64 zero = 0;
		bpf_map_update_elem(&syscall_batches, &cgid, &zero, BPF_NOEXIST);
		batch = bpf_map_lookup_elem(&syscall_batches, &cgid);
		if (!batch)
			return;
	}
	*batch += 1;
	if (*batch < cfg->syscall_batch)
		return;
	__u64 add = *batch;
	*batch = 0;
	__u64 total = __sync_fetch_and_add(&st->syscalls, add) + add;
	if (total > cfg->syscall_budget) {
		report_budget(st, cgid, ENC_BUDGET_SYSCALLS, -1, cfg->syscall_budget, total);
		bpf_send_signal(SIGKILL_);
	}
}

SEC("tp_btf/sys_enter")
int BPF_PROG(enc_sys_enter, struct pt_regs *regs, long id)
{
	__u64 cgid = bpf_get_current_cgroup_id();
	struct enc_config *cfg = bpf_map_lookup_elem(&configs, &cgid);
	if (!cfg)
		return 0;
	/* The launcher's own set-up steps before the first exec are not the agent's. */
	struct enc_state *st0 = state_of(cgid);
	if (!st0 || st0->execs == 0)
		return 0;
	if (cfg->flags & ENC_SYSCALL_BUDGET)
		count_syscall(cfg, st0, cgid);
	if (cfg->flags & ENC_AUDIT_SYSCALLS) {
		struct syscall_histogram *h = bpf_map_lookup_elem(&histograms, &cgid);
		if (h && id >= 0 && id < ENC_SYSCALL_SLOTS)
			h->counts[id & (ENC_SYSCALL_SLOTS - 1)] += 1;
	}
	if (!(cfg->flags & ENC_AUDIT_FILES))
		return 0;
	if (id != NR_OPEN && id != NR_OPENAT && id != NR_OPENAT2 && id != NR_CREAT)
		return 0;
	__u32 zero = 0;
	struct pending_open *po = bpf_map_lookup_elem(&open_scratch, &zero);
	if (!po)
		return 0;
	const char *path;
	po->syscall = id;
	po->dirfd = -100; /* AT_FDCWD */
	if (id == NR_OPEN || id == NR_CREAT) {
		path = (const char *)BPF_CORE_READ(regs, di);
		po->flags = id == NR_CREAT ? O_CREAT_WRONLY_TRUNC : (__u32)BPF_CORE_READ(regs, si);
	} else {
		po->dirfd = (__s32)BPF_CORE_READ(regs, di);
		path = (const char *)BPF_CORE_READ(regs, si);
		if (id == NR_OPENAT) {
			po->flags = (__u32)BPF_CORE_READ(regs, dx);
		} else {
			__u64 how_flags = 0;
			bpf_probe_read_user(&how_flags, sizeof(how_flags),
					    (const void *)BPF_CORE_READ(regs, dx));
			po->flags = (__u32)how_flags;
		}
	}
	long n = bpf_probe_read_user_str(po->path, sizeof(po->path), path);
	po->path_unreadable = n < 0;
	if (n < 0)
		po->path[0] = 0;
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	bpf_map_update_elem(&pending_opens, &tid, po, BPF_ANY);
	return 0;
}

/* How far check_read_triggers walks up from an opened file: far beyond any real nesting (a path
 * has at most 4096 bytes, but relative opens nest deeper). An open whose walk has not reached
 * its file system's root by then fires every read trigger of the enclosure (fail closed), so
 * that no depth of nesting reads a trigger's file unnoticed. */
#define READ_TRIGGER_MAX_DEPTH 4096

struct read_trigger_walk {
	struct dentry *d; /* the next dentry to look up */
	__u64 cgid;
	__u64 bits; /* the rules of the dentries looked up so far */
	int reached_root;
};

/* One step of the walk (a bpf_loop callback): looks up the current dentry's inode, then moves to
 * its parent. Returns 1 (stop) at the root of its file system. */
static long read_trigger_step(__u64 index, void *ctx)
{
	struct read_trigger_walk *w = ctx;
	struct dentry *d = w->d;
	struct inode *inode = BPF_CORE_READ(d, d_inode);
	if (inode) {
		struct enc_tool_key key = {};
		inode_key(&key, w->cgid, inode);
		__u64 *b = bpf_map_lookup_elem(&read_triggers, &key);
		if (b)
			w->bits |= *b;
	}
	struct dentry *parent = BPF_CORE_READ(d, d_parent);
	if (!inode || !parent || parent == d) {
		w->reached_root = 1;
		return 1;
	}
	w->d = parent;
	return 0;
}

/* A successful open of a file at or beneath a trigger tree fires its composition rules, before
 * the call returns: the file is identified by the device and inode of it and its ancestors (what
 * was really opened, whatever path, symlink or directory fd the agent used). Every file and
 * directory that was in a trigger tree when the run was configured is in read_triggers by its
 * own identity, so a hard link or a rename out of the tree still fires; a file that appeared in
 * the tree later is found by its ancestors, walked up to the root of its file system (through
 * mount points below the trigger too: the launcher keyed the root of every mount in the tree).
 * Only the agent reads: the triggers are armed from the first exec in the enclosure (its
 * command's; the enclosure's pid 1 never execs). Before it, the launcher's set-up opens the
 * granted paths in the run's cgroup (the mount view in pid 1, the Landlock ruleset in the
 * agent's process before its execve), and a trigger that is also a grant would fire on them.
 * After it pid 1 opens nothing: it only waits for signals and children.
 * An O_PATH descriptor reads nothing, nor does a write-only one, nor opening a directory (to list
 * it). */
static __always_inline void check_read_triggers(struct enc_state *st, __u64 cgid, long fd)
{
	if (st->execs == 0)
		return;
	struct task_struct *task = bpf_get_current_task_btf();
	struct file **fds = BPF_CORE_READ(task, files, fdt, fd);
	unsigned int max = BPF_CORE_READ(task, files, fdt, max_fds);
	if (fd < 0 || fd >= max)
		return;
	struct file *f = 0;
	if (bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]) || !f)
		return;
	if (BPF_CORE_READ(f, f_flags) & O_PATH_)
		return;
	if (!(BPF_CORE_READ(f, f_mode) & FMODE_READ_))
		return;
	if ((BPF_CORE_READ(f, f_inode, i_mode) & S_IFMT_) == S_IFDIR_)
		return;
	struct read_trigger_walk walk = {};
	walk.d = BPF_CORE_READ(f, f_path.dentry);
	walk.cgid = cgid;
	if (walk.d)
		bpf_loop(READ_TRIGGER_MAX_DEPTH, read_trigger_step, &walk, 0);
	__u64 bits = walk.bits;
	if (!walk.reached_root) {
		/* Nested deeper than the walk goes: a read of every trigger (device 0, inode 0). */
		struct enc_tool_key every = {};
		every.cgroup_id = cgid;
		__u64 *b = bpf_map_lookup_elem(&read_triggers, &every);
		if (b)
			bits |= *b;
	}
	if (bits & ~st->rules_fired) {
		const unsigned char *name = BPF_CORE_READ(f, f_path.dentry, d_name.name);
		fire_rules(st, cgid, bits, ENC_TRIGGER_READ, -1, ~0u, 0, 0, 0, (const char *)name);
	}
}

SEC("tp_btf/sys_exit")
int BPF_PROG(enc_sys_exit, struct pt_regs *regs, long ret)
{
	__u64 cgid = bpf_get_current_cgroup_id();
	struct enc_config *cfg = bpf_map_lookup_elem(&configs, &cgid);
	if (!cfg)
		return 0;
	if ((cfg->flags & ENC_REPORT_REFUSALS) && is_refusal(ret))
		report_refusal(cgid, regs, ret);
	if (cfg->flags & ENC_UNIX_SOCKETS)
		check_unix_peer(cgid, regs, ret);
	if ((cfg->flags & (ENC_READ_TRIGGERS | ENC_COUNT_OPENS)) && ret >= 0) {
		long nr = regs->orig_ax;
		if (nr == NR_OPEN || nr == NR_OPENAT || nr == NR_OPENAT2 || nr == NR_CREAT) {
			struct enc_state *st = state_of(cgid);
			if (st) {
				if (cfg->flags & ENC_COUNT_OPENS)
					__sync_fetch_and_add(&st->opens, 1);
				if (cfg->flags & ENC_READ_TRIGGERS)
					check_read_triggers(st, cgid, ret);
			}
		}
	}
	if (!(cfg->flags & ENC_AUDIT_FILES))
		return 0;
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	if (regs->orig_ax != NR_OPEN && regs->orig_ax != NR_OPENAT && regs->orig_ax != NR_OPENAT2 &&
	    regs->orig_ax != NR_CREAT) {
		return 0;
	}
	struct pending_open *po = bpf_map_lookup_elem(&pending_opens, &tid);
	if (!po)
		return 0;
	struct enc_state *st = state_of(cgid);
	if (st) {
		struct enc_open_event *e = reserve_record(st, cgid, ENC_EV_OPEN, sizeof(*e));
		if (e) {
			e->result = ret;
			e->dirfd = po->dirfd;
			e->flags = po->flags;
			e->syscall = po->syscall;
			e->path_unreadable = po->path_unreadable;
			__builtin_memcpy(e->path, po->path, sizeof(e->path));
			bpf_ringbuf_submit(e, 0);
		}
	}
	bpf_map_delete_elem(&pending_opens, &tid);
	return 0;
}
