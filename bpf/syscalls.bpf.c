/* One hook, tp_btf/sys_exit, for everything the enclosure does per syscall: the syscall budget
 * (per-CPU batches added atomically to the enclosure's total, so no lock and a bounded
 * overshoot), the per-syscall histogram of audit.syscalls and baselines, the file-access log of
 * audit.files (aggregated here: the first open of each file and access mode is a record, the
 * others are counted), read triggers, the agent's own unix sockets, and the refused file and exec
 * syscalls of every enclosure (refusals.bpf.c). Counting at exit, the syscall number is
 * regs->orig_ax and the arguments are still in the saved registers; a call that never returns
 * (exit, exit_group, an execve that fails past the point of no return) is not counted.
 *
 * The program runs on every syscall of the host while attached, so it returns before any map
 * lookup for what cannot concern an enclosure:
 *  - a task of the initial pid namespace. Every enclosure task is in a pid namespace of its own:
 *    the launcher starts the enclosure's pid 1 with CLONE_NEWPID (launcher/run/spawn.cc, also
 *    for the daemon's runs), every process of the enclosure descends from it, and no process can
 *    leave its pid namespace (setns(CLONE_NEWPID) only moves a task's future children, and only
 *    into a descendant namespace; memfd_noexec.cc's helper joins the enclosure's, not the
 *    host's). The launcher's own steps in the run's cgroup before the enclosure exists count for
 *    nothing anyway (before the first exec nothing is counted or reported);
 *  - unless some enclosure counts syscalls (syscall_counting, maps.bpf.h), a syscall that is not
 *    a refusal (is_refusal) and not one of those the other duties look at (the open family for
 *    the access log, read triggers and open counts; connect and bind for unix sockets).
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

static __always_inline int is_open_call(long nr)
{
	return nr == NR_OPEN || nr == NR_OPENAT || nr == NR_OPENAT2 || nr == NR_CREAT;
}

/* Whether some enclosure counts syscalls (syscall_counting). */
static __always_inline int syscalls_counted(void)
{
	__u32 zero = 0;
	__u32 *counting = bpf_map_lookup_elem(&syscall_counting, &zero);
	return counting && *counting;
}

/* Whether this task's syscall may concern an enclosure at all (see the top of this file). */
static __always_inline int may_concern_an_enclosure(long nr, long ret)
{
	struct task_struct *task = bpf_get_current_task_btf();
	if (task->thread_pid->level == 0)
		return 0;
	if (syscalls_counted())
		return 1;
	return is_refusal(ret) || is_open_call(nr) || nr == NR_CONNECT_ || nr == NR_BIND_;
}

/* Adds a full batch to the enclosure's total, and past the budget kills the caller (and every
 * further caller on this CPU at once; the others at their next batch, and the supervisor ends
 * the run on the budget record). Calls counted before the agent's first exec are the launcher's
 * set-up: a batch that ends before it is dropped. */
static __always_inline void flush_syscalls(struct enc_syscall_batch *b, __u64 cgid)
{
	__u64 add = b->count;
	b->count = 0;
	struct enc_state *st = state_of(cgid);
	if (!st || st->execs == 0)
		return;
	__u64 total = __sync_fetch_and_add(&st->syscalls, add) + add;
	if (!(b->flags & ENC_SYSCALL_BUDGET))
		return;
	if ((st->exceeded & (1ULL << ENC_BUDGET_SYSCALLS)) || total > b->budget) {
		report_budget(st, cgid, ENC_BUDGET_SYSCALLS, -1, b->budget, total);
		b->killing = 1;
		bpf_send_signal(SIGKILL_);
	}
}

/* The histogram of audit.syscalls and baselines: the agent's calls only. */
static __always_inline void count_in_histogram(__u64 cgid, long nr)
{
	struct enc_state *st = state_of(cgid);
	if (!st || st->execs == 0)
		return;
	struct syscall_histogram *h = bpf_map_lookup_elem(&histograms, &cgid);
	if (h && nr >= 0 && nr < ENC_SYSCALL_SLOTS)
		h->counts[nr & (ENC_SYSCALL_SLOTS - 1)] += 1;
}

/* Counts a syscall of enclosure `cgid` when it counts syscalls (it has a meter): one per-CPU
 * lookup, a batch of up to 64 calls (enclosure_bpf.cc) between touches of the shared state, so
 * no lock and a bounded overshoot. */
static __always_inline void account_syscall(__u64 cgid, long nr)
{
	struct enc_syscall_batch *b = bpf_map_lookup_elem(&syscall_batches, &cgid);
	if (!b)
		return;
	if (b->killing) {
		bpf_send_signal(SIGKILL_);
		return;
	}
	if (b->flags & ENC_AUDIT_SYSCALLS)
		count_in_histogram(cgid, nr);
	b->count += 1;
	if (b->count >= b->batch)
		flush_syscalls(b, cgid);
}

/* FNV-1a of a NUL-terminated path: the key of a failed open, which opened no file. */
static __always_inline __u64 path_hash(const char *path)
{
	__u64 h = 0xcbf29ce484222325ULL;
	for (int i = 0; i < ENC_PATH_MAX; i++) {
		char c = path[i];
		if (!c)
			break;
		h = (h ^ (__u8)c) * 0x100000001b3ULL;
	}
	return h;
}

/* The open's path (as the process gave it) and flags, from its saved arguments. */
static __always_inline void read_open_arguments(struct pt_regs *regs, long nr,
						struct enc_open_count *c, __s32 *dirfd)
{
	const char *path;
	*dirfd = -100; /* AT_FDCWD */
	if (nr == NR_OPEN || nr == NR_CREAT) {
		path = (const char *)BPF_CORE_READ(regs, di);
		c->flags = nr == NR_CREAT ? O_CREAT_WRONLY_TRUNC : (__u32)BPF_CORE_READ(regs, si);
	} else {
		*dirfd = (__s32)BPF_CORE_READ(regs, di);
		path = (const char *)BPF_CORE_READ(regs, si);
		if (nr == NR_OPENAT) {
			c->flags = (__u32)BPF_CORE_READ(regs, dx);
		} else {
			__u64 how_flags = 0;
			bpf_probe_read_user(&how_flags, sizeof(how_flags),
					    (const void *)BPF_CORE_READ(regs, dx));
			c->flags = (__u32)how_flags;
		}
	}
	c->syscall = nr;
	long n = bpf_probe_read_user_str(c->path, sizeof(c->path), path);
	c->path_unreadable = n < 0;
	if (n < 0)
		c->path[0] = 0;
}

/* The key of an open that returned `ret`: the opened file itself when it succeeded (whatever
 * path, symlink or descriptor led there), else its path and errno. */
static __always_inline void open_key(struct enc_open_key *key, __u64 cgid, long ret,
				     const struct enc_open_count *c)
{
	key->cgroup_id = cgid;
	key->mode = c->flags & ENC_OPEN_MODE_MASK;
	if (ret < 0) {
		key->error = -ret;
		key->ino = path_hash(c->path);
		return;
	}
	struct file *f = file_of_fd(ret);
	struct inode *inode = f ? BPF_CORE_READ(f, f_inode) : NULL;
	if (!inode)
		return; /* dev 0, ino 0, no error: one key for opens whose file cannot be read */
	struct enc_tool_key file = {};
	inode_key(&file, cgid, inode);
	key->dev = file.dev;
	key->ino = file.ino;
}

/* Adds the open to its key's count; returns 1 when the key is new to the run (then its count is
 * in file_opens, `*counted` set) or has no room (`*counted` clear): either way a record. */
static __always_inline int count_open(struct enc_state *st, const struct enc_open_key *key,
				      struct enc_open_count *c, int *counted)
{
	*counted = 0;
	struct enc_open_count *known = bpf_map_lookup_elem(&file_opens, key);
	if (known) {
		__sync_fetch_and_add(&known->opens, 1);
		return 0;
	}
	if (st->open_files < ENC_FILE_OPENS_PER_RUN) {
		c->opens = 1;
		c->pid = bpf_get_current_pid_tgid() >> 32;
		long err = bpf_map_update_elem(&file_opens, key, c, BPF_NOEXIST);
		if (err == 0) {
			__sync_fetch_and_add(&st->open_files, 1);
			*counted = 1;
			return 1;
		}
		known = bpf_map_lookup_elem(&file_opens, key); /* another CPU's, just now */
		if (known) {
			__sync_fetch_and_add(&known->opens, 1);
			return 0;
		}
	}
	/* No room: recorded one by one, never silently dropped (a lost record is counted too). */
	__sync_fetch_and_add(&st->opens_unkeyed, 1);
	return 1;
}

/* audit.files: an open family call of the agent that returned `ret`. */
static __always_inline void audit_open(struct enc_state *st, __u64 cgid, struct pt_regs *regs,
				       long nr, long ret)
{
	if (st->execs == 0)
		return;
	__u32 zero = 0;
	struct enc_open_count *c = bpf_map_lookup_elem(&open_scratch, &zero);
	if (!c)
		return;
	__s32 dirfd;
	read_open_arguments(regs, nr, c, &dirfd);
	struct enc_open_key key = {};
	open_key(&key, cgid, ret, c);
	__sync_fetch_and_add(&st->audited_opens, 1);
	int counted;
	if (!count_open(st, &key, c, &counted))
		return;
	struct enc_open_event *e = reserve_record(st, cgid, ENC_EV_OPEN, sizeof(*e));
	if (!e)
		return;
	e->result = ret;
	e->dirfd = dirfd;
	e->flags = c->flags;
	e->syscall = c->syscall;
	e->path_unreadable = c->path_unreadable;
	__builtin_memcpy(e->path, c->path, sizeof(e->path));
	e->dev = key.dev;
	e->ino = key.ino;
	e->counted = counted;
	e->pad = 0;
	bpf_ringbuf_submit(e, 0);
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
	struct file *f = file_of_fd(fd);
	if (!f)
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

/* Everything sys_exit does; `with_file_log` (a constant) keeps the access log of audit.files, which
 * multiplies the paths the verifier explores (~15x its time): a launcher that needs no access
 * log loads enc_sys_exit_lean instead (LayerNeeds::file_log). */
static __always_inline int on_sys_exit(struct pt_regs *regs, long ret, const int with_file_log)
{
	long nr = regs->orig_ax;
	if (!may_concern_an_enclosure(nr, ret))
		return 0;
	__u64 cgid = bpf_get_current_cgroup_id();
	if (syscalls_counted())
		account_syscall(cgid, nr);
	if (!is_refusal(ret) && !is_open_call(nr) && nr != NR_CONNECT_ && nr != NR_BIND_)
		return 0;
	struct enc_config *cfg = bpf_map_lookup_elem(&configs, &cgid);
	if (!cfg)
		return 0;
	struct enc_state *st = state_of(cgid);
	if (!st)
		return 0;
	if ((cfg->flags & ENC_REPORT_REFUSALS) && is_refusal(ret))
		report_refusal(st, cgid, regs, ret);
	if (cfg->flags & ENC_UNIX_SOCKETS)
		check_unix_peer(cgid, regs, ret);
	if (!is_open_call(nr))
		return 0;
	if ((cfg->flags & ENC_COUNT_OPENS) && ret >= 0)
		__sync_fetch_and_add(&st->opens, 1);
	if ((cfg->flags & ENC_READ_TRIGGERS) && ret >= 0)
		check_read_triggers(st, cgid, ret);
	if (with_file_log && (cfg->flags & ENC_AUDIT_FILES))
		audit_open(st, cgid, regs, nr, ret);
	return 0;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(enc_sys_exit, struct pt_regs *regs, long ret)
{
	return on_sys_exit(regs, ret, 1);
}

SEC("tp_btf/sys_exit")
int BPF_PROG(enc_sys_exit_lean, struct pt_regs *regs, long ret)
{
	return on_sys_exit(regs, ret, 0);
}
