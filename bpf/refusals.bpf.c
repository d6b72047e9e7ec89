/* Refusals: a record for every file or exec syscall of an enclosure's agent that fails with
 * EACCES, EPERM, EROFS or EXDEV: what the mount view (EROFS), Landlock (EACCES, EXDEV) and noexec
 * mounts (EACCES) refuse without any other program seeing it. report_refusal runs in the
 * tp_btf/sys_exit program (syscalls.bpf.c, enc_sys_exit) of enclosures with ENC_REPORT_REFUSALS,
 * only for those results; the syscall's arguments are still in its saved registers there, and
 * the paths are read from the agent's memory only for a refusal of a syscall of
 * ENC_REFUSAL_SYSCALLS (enclosure_abi.h). A refused read (an open without write, create or
 * truncate flags) is not reported: a hidden path is ENOENT anyway, and reads are the noise.
 * seccomp's refusals (EPERM, answered by the supervisor before the call returns) reach sys_exit
 * too: the supervisor knows its own and drops their records (Supervisor::on_ring).
 * Included by enclosure.bpf.c. */
#include "maps.bpf.h"

#define ENC_AT_FDCWD -100
#define ENC_O_WRITE_MASK (01 | 02 | 0100 | 01000) /* O_WRONLY | O_RDWR | O_CREAT | O_TRUNC */
#define ENC_EPERM 1
#define ENC_EACCES 13
#define ENC_EXDEV 18
#define ENC_EROFS 30

/* Where a syscall's arguments are (one row of ENC_REFUSAL_SYSCALLS). */
struct refusal_row {
	__s32 section;
	__s32 dirfd;
	__s32 path;
	__s32 dirfd2;
	__s32 path2;
	__s32 flags;
};

static __always_inline int refusal_row_of(long nr, struct refusal_row *row)
{
	switch (nr) {
#define ENC_REFUSAL_CASE(name, number, sec, d, p, d2, p2, f)         \
	case number:                                                 \
		*row = (struct refusal_row){ sec, d, p, d2, p2, f }; \
		return 1;
		ENC_REFUSAL_SYSCALLS(ENC_REFUSAL_CASE)
#undef ENC_REFUSAL_CASE
	default:
		return 0;
	}
}

static __always_inline int is_refusal(long ret)
{
	return ret == -ENC_EACCES || ret == -ENC_EPERM || ret == -ENC_EROFS || ret == -ENC_EXDEV;
}

/* Argument `index` (0..5) of the syscall, from the registers saved at its entry (x86-64). */
static __always_inline __u64 syscall_arg(struct pt_regs *regs, int index)
{
	switch (index) {
	case 0:
		return BPF_CORE_READ(regs, di);
	case 1:
		return BPF_CORE_READ(regs, si);
	case 2:
		return BPF_CORE_READ(regs, dx);
	case 3:
		return BPF_CORE_READ(regs, r10);
	case 4:
		return BPF_CORE_READ(regs, r8);
	case 5:
		return BPF_CORE_READ(regs, r9);
	default:
		return 0;
	}
}

/* The flags of an open (`where` as in ENC_REFUSAL_SYSCALLS), 0 for another syscall. */
static __always_inline __u32 refusal_open_flags(struct pt_regs *regs, int where)
{
	if (where < 0)
		return 0;
	if (where == ENC_FLAGS_CREAT)
		return 0100 | 01 | 01000; /* O_CREAT | O_WRONLY | O_TRUNC */
	if (where >= ENC_FLAGS_HOW(0)) {
		__u64 how_flags = 0;
		bpf_probe_read_user(&how_flags, sizeof(how_flags),
				    (const void *)syscall_arg(regs, where - ENC_FLAGS_HOW(0)));
		return (__u32)how_flags;
	}
	return (__u32)syscall_arg(regs, where);
}

/* Reads the path at argument `index` into `out`; returns the unreadable bit `bit` when there is
 * a pointer that cannot be read, else 0 (no such argument, or a NULL pointer: an empty path). */
static __always_inline __u32 read_refusal_path(struct pt_regs *regs, int index, char *out,
					       __u32 bit)
{
	out[0] = 0;
	if (index < 0)
		return 0;
	const char *p = (const char *)syscall_arg(regs, index);
	if (!p)
		return 0;
	if (bpf_probe_read_user_str(out, ENC_PATH_MAX, p) < 0) {
		out[0] = 0;
		return bit;
	}
	return 0;
}

/* At the exit of a syscall of enclosure `cgid` (state `st`) that returned `ret`, a refusal
 * (is_refusal). */
static __always_inline void report_refusal(struct enc_state *st, __u64 cgid, struct pt_regs *regs,
					   long ret)
{
	struct refusal_row row;
	if (!refusal_row_of(regs->orig_ax, &row))
		return;
	/* The launcher's own set-up steps before the first exec are not the agent's. */
	if (st->execs == 0)
		return;
	__u32 flags = refusal_open_flags(regs, row.flags);
	if (row.flags >= 0 && !(flags & ENC_O_WRITE_MASK))
		return;
	/* Counted first: exit.denials stays exact when the record is lost. */
	__sync_fetch_and_add(&st->refusals, 1);
	struct enc_refusal_event *e = reserve_record(st, cgid, ENC_EV_REFUSAL, sizeof(*e));
	if (!e)
		return;
	e->result = ret;
	e->syscall = (__u32)regs->orig_ax;
	e->section = row.section;
	e->dirfd = row.dirfd >= 0 ? (__s32)syscall_arg(regs, row.dirfd) : ENC_AT_FDCWD;
	e->dirfd2 = row.dirfd2 >= 0 ? (__s32)syscall_arg(regs, row.dirfd2) : ENC_AT_FDCWD;
	e->flags = flags;
	e->unreadable = read_refusal_path(regs, row.path, e->path, ENC_REFUSAL_PATH_UNREADABLE);
	e->unreadable |= read_refusal_path(regs, row.path2, e->path2, ENC_REFUSAL_PATH2_UNREADABLE);
	bpf_ringbuf_submit(e, 0);
}
