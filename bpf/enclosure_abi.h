/* The records and map layouts shared by the BPF programs (the .bpf.c files here) and the C++ loader and
 * decoder. Plain C, fixed-size, no pointers: what the kernel writes is what user space reads.
 * Per-enclosure state is keyed by the v2 cgroup id, so one loaded set of programs can serve
 * many enclosures. */
#ifndef ENCLOSURE_BPF_ABI_H
#define ENCLOSURE_BPF_ABI_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define ENC_MAX_TOOLS 64
#define ENC_MAX_PORT_RANGES 16
#define ENC_PATH_MAX 256
#define ENC_ARG_MAX 128
#define ENC_SYSCALL_SLOTS 512 /* histogram of syscall numbers 0..511 */

/* enc_config.flags */
#define ENC_NET_FILTERED (1u << 0)   /* cgroup hooks decide connect/sendmsg/socket */
#define ENC_COUNT_TOOLS (1u << 1)    /* exec tracing: tool calls, prices */
#define ENC_SYSCALL_BUDGET (1u << 2) /* count syscalls against syscall_budget */
#define ENC_AUDIT_FILES (1u << 3)    /* record every open */
#define ENC_AUDIT_SYSCALLS (1u << 4) /* per-syscall histogram */
#define ENC_EGRESS_BUDGET (1u << 5)  /* count egress bytes against egress_bytes_budget */
#define ENC_COST_BUDGET (1u << 6)    /* tool prices against cost_budget_micro */
#define ENC_TOOL_CALLS_BUDGET (1u << 7)
#define ENC_DNS_REDIRECT (1u << 8)     /* port 53 goes to the enclosure's resolver */
#define ENC_READ_TRIGGERS (1u << 9)    /* composition rules triggered by reading a tree */
#define ENC_COUNT_OPENS (1u << 10)     /* count successful opens (behaviour baselines) */
#define ENC_REPORT_REFUSALS (1u << 11) /* file and exec refusals on sys_exit (refusals.bpf.c) */

#define ENC_MAX_RULES 64 /* composition rules: one bit each */

/* Budgets the kernel enforces (enc_budget_event.budget, bits of enc_state.exceeded). */
enum enc_budget {
	ENC_BUDGET_TOOL_MAX_CALLS = 1,
	ENC_BUDGET_TOOL_CALLS = 2,
	ENC_BUDGET_COST = 3,
	ENC_BUDGET_SYSCALLS = 4,
	ENC_BUDGET_EGRESS_BYTES = 5,
};

enum enc_event_type {
	ENC_EV_EXEC = 1,	/* an exec in the enclosure (tool or not) */
	ENC_EV_NET_DENY = 2,	/* connect/sendmsg/socket refused */
	ENC_EV_CONNECT = 3,	/* connect admitted */
	ENC_EV_BUDGET = 4,	/* a kernel-enforced budget was exceeded */
	ENC_EV_OPEN = 5,	/* file-access log */
	ENC_EV_EGRESS_DROP = 6, /* a packet to an address no rule admits was dropped */
	ENC_EV_RULE = 7,	/* a composition rule fired */
	ENC_EV_REFUSAL = 8,	/* a file or exec syscall refused (mount view, Landlock, noexec) */
};

/* enc_rule_event.trigger */
enum enc_trigger {
	ENC_TRIGGER_READ = 1,
	ENC_TRIGGER_EXEC = 2,
	ENC_TRIGGER_CONNECT = 3,
};

/* enc_net_event.hook */
enum enc_hook {
	ENC_HOOK_CONNECT4 = 1,
	ENC_HOOK_CONNECT6 = 2,
	ENC_HOOK_SENDMSG4 = 3,
	ENC_HOOK_SENDMSG6 = 4,
	ENC_HOOK_SOCK_CREATE = 5,
	ENC_HOOK_SKB_EGRESS = 6,
};

/* enc_net_event.reason */
enum enc_net_reason {
	ENC_NET_NO_RULE = 1,	 /* no egress rule for the address */
	ENC_NET_PORT = 2,	 /* a rule for the address, not for the port */
	ENC_NET_SOCKET_TYPE = 3, /* raw, ping or another protocol than tcp/udp */
	ENC_NET_BUDGET = 4,	 /* egress_bytes exhausted */
	ENC_NET_RULE = 5,	 /* a composition rule that fired denies it */
};

/* ---- path unix sockets (unix_sockets.bpf.c) ---- */
#define ENC_UNIX_SOCKETS (1u << 12) /* connect/sendmsg to path unix sockets only where allowed */
#define ENC_UNIX_PATH_MAX 108	    /* sizeof sockaddr_un.sun_path */

enum enc_unix_event_type {
	ENC_EV_UNIX_DENY = 9, /* a connect or sendmsg to a path unix socket refused */
};

/* The value of an unix_paths entry. */
enum enc_unix_verdict {
	ENC_UNIX_NAMED = 1,  /* named in /network/unix: allowed */
	ENC_UNIX_REFUSE = 2, /* under a read grant, /proc or /dev: EACCES and a record */
	ENC_UNIX_OWN =
		3, /* under a write grant or tmpfs: allowed if it reaches one the agent bound */
};

/* enc_unix_event.hook */
enum enc_unix_hook {
	ENC_UNIX_CONNECT = 1,
	ENC_UNIX_SENDMSG = 2,
};

/* enc_unix_event.reason */
enum enc_unix_reason {
	ENC_UNIX_NOT_NAMED =
		1, /* under a read grant, /proc or /dev, and not named in /network/unix */
	ENC_UNIX_RELATIVE = 2, /* not an absolute path: the hook cannot know where it leads */
	ENC_UNIX_DOT = 3,      /* a "." or ".." segment: the name would not say where it leads */
	ENC_UNIX_NOT_OWN = 4,  /* admitted as the agent's own, it reached a socket the agent did not
				  bind (a symlink or rename led out): the caller is killed */
};

/* The allowed socket paths, one LPM trie for every enclosure: the cgroup id, then the path's
 * bytes. A named socket's prefix covers its terminating NUL (that path exactly); a directory's
 * covers "dir/" (every path beneath it). */
struct enc_unix_key {
	__u32 prefixlen;
	__u8 cgroup_id[8];
	char path[ENC_UNIX_PATH_MAX];
};

struct enc_config {
	__u32 flags;
	__u32 ntools;
	__u64 syscall_budget;
	__u64 tool_calls_budget;
	__u64 cost_budget_micro;
	__u64 egress_bytes_budget;
	__u32 syscall_batch; /* per-CPU calls counted before they are added to the total */
	__u32 dns_ip4;	     /* the resolver (network byte order): 127.0.0.1 */
	__u32 dns_ip6[4];    /* ::1 */
	__u16 dns_port4;     /* network byte order */
	__u16 dns_port6;
	__u32 nrules;
	__u64 rules_deny_network;	     /* composition rules (bits) that deny all network */
	__u64 tool_denied_by[ENC_MAX_TOOLS]; /* rules that deny this tool */
	__u64 tool_triggers[ENC_MAX_TOOLS];  /* rules that an exec of this tool fires */
	__u64 tool_max_calls[ENC_MAX_TOOLS]; /* ~0ULL: unlimited */
	__u64 tool_cost_micro[ENC_MAX_TOOLS];
};

struct enc_state {
	__u64 records;	  /* records the kernel tried to deliver (delivered + lost) */
	__u64 lost;	  /* ring buffer reservations that failed */
	__u64 execs;	  /* every exec, the initial command included */
	__u64 tool_calls; /* tool executions, the initial command excluded */
	__u64 cost_micro; /* tool prices of those executions */
	__u64 syscalls;	  /* flushed from the per-CPU batches */
	__u64 egress_bytes;
	__u64 egress_dropped;
	__u64 net_denied;
	__u64 exec_denied; /* execs refused by the exec program (the loader run directly) */
	__u64 exceeded;	   /* bit (1 << enc_budget) once a budget is exceeded */
	__u64 rules_fired; /* composition rules (bits) that fired */
	__u64 opens;	   /* successful opens, with ENC_COUNT_OPENS */
	__u64 connects;	   /* admitted connects */
	__u64 tool_counts[ENC_MAX_TOOLS];
	__u64 refusals; /* file and exec syscalls refused (refusals.bpf.c): deny events */
	/* audit.files (syscalls.bpf.c, audit_open): every open family call of the agent, the
	 * distinct (file, access mode, errno) keys of file_opens it holds, and the opens that found
	 * no room there (the run at ENC_FILE_OPENS_PER_RUN, or the map full) and were recorded one
	 * by one instead. */
	__u64 audited_opens;
	__u64 open_files;
	__u64 opens_unkeyed;
};

/* The syscall meter of an enclosure that counts syscalls (a budget, a histogram), one per CPU
 * (syscall_batches in maps.bpf.h), written by the loader with the enclosure's figures: so that
 * counting a call takes one map lookup, and the shared enc_state is touched once a batch. */
struct enc_syscall_batch {
	__u64 count;   /* calls on this CPU not yet added to enc_state.syscalls */
	__u64 budget;  /* enc_config.syscall_budget */
	__u32 batch;   /* enc_config.syscall_batch: count at which they are added */
	__u32 flags;   /* enc_config.flags */
	__u64 killing; /* the budget was exceeded: every further call on this CPU is killed */
};

/* LPM trie keys: enclosure and protocol first, so that one trie serves every enclosure. */
struct enc_lpm4_key {
	__u32 prefixlen; /* 72 + prefix */
	__u64 cgroup_id;
	__u8 protocol; /* 6 tcp, 17 udp */
	__u8 addr[4];
} __attribute__((packed));

struct enc_lpm6_key {
	__u32 prefixlen; /* 72 + prefix */
	__u64 cgroup_id;
	__u8 protocol;
	__u8 addr[16];
} __attribute__((packed));

struct enc_port_range {
	__u16 lo;
	__u16 hi;
};

struct enc_ports {
	__u32 rule_index; /* /network/egress/N of the most specific rule */
	__u32 nranges;
	__u64 triggers;	 /* composition rules a connect admitted here fires */
	__u64 denied_by; /* composition rules that deny this destination once fired */
	struct enc_port_range ranges[ENC_MAX_PORT_RANGES];
};

/* The destination a socket's DNS traffic was redirected from (socket storage). */
struct enc_dns_origin {
	__u32 family;
	__u16 port; /* network byte order */
	__u16 pad;
	__u32 addr[4];
};

struct enc_tool_key {
	__u64 cgroup_id;
	__u64 dev; /* kernel dev_t as stat() reports it: the super block's, a btrfs subvolume's */
	__u64 ino;
};

/* ---- ring buffer records ------------------------------------------------------------------ */

struct enc_header {
	__u32 type;
	__u32 size;
	__u64 cgroup_id;
	__u64 kseq;	/* per enclosure, from enc_state.records */
	__u64 ktime_ns; /* bpf_ktime_get_boot_ns() */
	__u32 pid;	/* thread group id (the process) */
	__u32 tid;
};

/* enc_exec_event.refused */
enum enc_exec_refusal {
	ENC_EXEC_LOADER = 1, /* the dynamic loader run directly (it would run any readable ELF) */
	ENC_EXEC_RULE = 2,   /* a composition rule that fired denies this tool */
};

struct enc_script_key {
	__u64 cgroup_id;
	char path[ENC_PATH_MAX]; /* a script tool's absolute path, NUL-padded */
};

struct enc_exec_event {
	struct enc_header h;
	__u32 ppid;
	__s32 tool;    /* index in the manifest's tools, -1 when the file is not a tool */
	__u32 initial; /* the enclosure's first exec: the command given to `run` */
	__u32 killed;  /* over a budget, or refused: SIGKILLed by the program */
	__u32 refused; /* enc_exec_refusal, 0 when not refused */
	__u32 script;  /* executed as a #! script */
	__u32 rule;    /* for ENC_EXEC_RULE: the composition rule */
	__u32 pad;
	__u64 tool_count; /* this tool's calls so far */
	__u64 tool_calls; /* all tool calls so far */
	__u64 cost_micro;
	char filename[ENC_PATH_MAX];
	char argv0[ENC_ARG_MAX];
};

struct enc_net_event {
	struct enc_header h;
	__u32 hook;
	__u32 reason;
	__u32 family; /* 2 AF_INET, 10 AF_INET6 */
	__u32 type;   /* SOCK_STREAM, SOCK_DGRAM, SOCK_RAW */
	__u32 protocol;
	__u32 rule_index; /* for admitted connects and port refusals: /network/egress/N */
	__u16 port;	  /* host byte order */
	__u16 pad;
	__u8 addr[16]; /* IPv4 in the first 4 bytes */
	__u32 rule;    /* for ENC_NET_RULE: the composition rule */
	__u32 pad2;
};

/* A connect or sendmsg to a path unix socket refused (unix_sockets.bpf.c). */
struct enc_unix_event {
	struct enc_header h;
	__u32 hook;
	__u32 reason;
	__u32 type; /* SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET */
	__u32 pad;
	char path[ENC_UNIX_PATH_MAX]; /* as the agent gave it, NUL-terminated here */
	__u32 pad2;
};

struct enc_rule_event {
	struct enc_header h;
	__u32 rule;	   /* index in the manifest's rules */
	__u32 trigger;	   /* enc_trigger */
	__s32 tool;	   /* ENC_TRIGGER_EXEC */
	__u32 egress_rule; /* ENC_TRIGGER_CONNECT */
	__u16 port;
	__u16 pad;
	__u8 addr[16];
	__u32 family;
	__u32 pad2;
	char path[ENC_PATH_MAX]; /* ENC_TRIGGER_READ: the name of the file opened */
};

struct enc_budget_event {
	struct enc_header h;
	__u32 budget;
	__s32 tool;
	__u64 limit;
	__u64 value;
};

/* audit.files: an open family call is keyed by what it opened (a successful open: the opened
 * file's device and inode, as inode_key computes them) or, when it failed, by a hash of its path
 * and its errno; and by its access mode. The first open of each key in a run is a record
 * (enc_open_event, `counted` set); every open is counted in the key's enc_open_count in the
 * file_opens map (maps.bpf.h), which the launcher reads at the run's end. A run holds at most
 * ENC_FILE_OPENS_PER_RUN keys: past them each open is a record of its own (`counted` clear) and
 * enc_state.opens_unkeyed counts it. */
#define ENC_FILE_OPENS_PER_RUN 32768
#define ENC_OPEN_MODE_MASK (03 | 010000000) /* O_ACCMODE | O_PATH of the open's flags */

struct enc_open_key {
	__u64 cgroup_id;
	__u64 dev;   /* 0 for a failed open */
	__u64 ino;   /* a failed open: the FNV-1a hash of its path */
	__u32 mode;  /* flags & ENC_OPEN_MODE_MASK */
	__s32 error; /* 0, or the errno of a failed open */
};

struct enc_open_count {
	__u64 opens; /* every open of the key, the first included */
	__u32 pid;   /* the process of the first open */
	__u32 flags; /* the first open's flags */
	__u32 syscall;
	__u32 path_unreadable;
	char path[ENC_PATH_MAX]; /* as the first open gave it */
};

struct enc_open_event {
	struct enc_header h;
	__s64 result; /* fd, or -errno */
	__s32 dirfd;
	__u32 flags;
	__u32 syscall; /* nr: open, openat, openat2, creat */
	__u32 path_unreadable;
	char path[ENC_PATH_MAX];
	__u64 dev; /* the key (enc_open_key) */
	__u64 ino;
	__u32 counted; /* the first open of its key: the others are counted, not recorded */
	__u32 pad;
};

/* Refusals of the mount view, Landlock and noexec mounts (refusals.bpf.c, on tp_btf/sys_exit):
 * the syscalls reported, one row each, for the BPF program (where the arguments are) and the
 * decoder (names).
 * X(name, x86-64 nr, section, dirfd, path, dirfd2, path2, flags): argument indices, -1 for none;
 * `flags` is where an open's flags are: an argument index, ENC_FLAGS_HOW(i) (argument i is a
 * struct open_how), ENC_FLAGS_CREAT (creat: always a write). An open is reported only when its
 * flags ask to write, create or truncate (a refused read of a hidden path is ENOENT anyway). */
enum enc_refusal_section {
	ENC_REFUSAL_FILES = 1, /* /filesystem */
	ENC_REFUSAL_EXEC = 2,  /* /tools: an exec of a non-tool */
};
#define ENC_FLAGS_CREAT 8
#define ENC_FLAGS_HOW(i) (16 + (i))
#define ENC_REFUSAL_SYSCALLS(X)                                            \
	X(execve, 59, ENC_REFUSAL_EXEC, -1, 0, -1, -1, -1)                 \
	X(execveat, 322, ENC_REFUSAL_EXEC, 0, 1, -1, -1, -1)               \
	X(open, 2, ENC_REFUSAL_FILES, -1, 0, -1, -1, 1)                    \
	X(openat, 257, ENC_REFUSAL_FILES, 0, 1, -1, -1, 2)                 \
	X(openat2, 437, ENC_REFUSAL_FILES, 0, 1, -1, -1, ENC_FLAGS_HOW(2)) \
	X(creat, 85, ENC_REFUSAL_FILES, -1, 0, -1, -1, ENC_FLAGS_CREAT)    \
	X(unlink, 87, ENC_REFUSAL_FILES, -1, 0, -1, -1, -1)                \
	X(unlinkat, 263, ENC_REFUSAL_FILES, 0, 1, -1, -1, -1)              \
	X(rename, 82, ENC_REFUSAL_FILES, -1, 0, -1, 1, -1)                 \
	X(renameat, 264, ENC_REFUSAL_FILES, 0, 1, 2, 3, -1)                \
	X(renameat2, 316, ENC_REFUSAL_FILES, 0, 1, 2, 3, -1)               \
	X(link, 86, ENC_REFUSAL_FILES, -1, 0, -1, 1, -1)                   \
	X(linkat, 265, ENC_REFUSAL_FILES, 0, 1, 2, 3, -1)                  \
	X(symlink, 88, ENC_REFUSAL_FILES, -1, 1, -1, -1, -1)               \
	X(symlinkat, 266, ENC_REFUSAL_FILES, 1, 2, -1, -1, -1)             \
	X(mkdir, 83, ENC_REFUSAL_FILES, -1, 0, -1, -1, -1)                 \
	X(mkdirat, 258, ENC_REFUSAL_FILES, 0, 1, -1, -1, -1)               \
	X(rmdir, 84, ENC_REFUSAL_FILES, -1, 0, -1, -1, -1)                 \
	X(mknod, 133, ENC_REFUSAL_FILES, -1, 0, -1, -1, -1)                \
	X(mknodat, 259, ENC_REFUSAL_FILES, 0, 1, -1, -1, -1)               \
	X(chmod, 90, ENC_REFUSAL_FILES, -1, 0, -1, -1, -1)                 \
	X(fchmodat, 268, ENC_REFUSAL_FILES, 0, 1, -1, -1, -1)              \
	X(fchmodat2, 452, ENC_REFUSAL_FILES, 0, 1, -1, -1, -1)             \
	X(chown, 92, ENC_REFUSAL_FILES, -1, 0, -1, -1, -1)                 \
	X(lchown, 94, ENC_REFUSAL_FILES, -1, 0, -1, -1, -1)                \
	X(fchownat, 260, ENC_REFUSAL_FILES, 0, 1, -1, -1, -1)              \
	X(truncate, 76, ENC_REFUSAL_FILES, -1, 0, -1, -1, -1)              \
	X(utime, 132, ENC_REFUSAL_FILES, -1, 0, -1, -1, -1)                \
	X(utimes, 235, ENC_REFUSAL_FILES, -1, 0, -1, -1, -1)               \
	X(futimesat, 261, ENC_REFUSAL_FILES, 0, 1, -1, -1, -1)             \
	X(utimensat, 280, ENC_REFUSAL_FILES, 0, 1, -1, -1, -1)             \
	X(setxattr, 188, ENC_REFUSAL_FILES, -1, 0, -1, -1, -1)             \
	X(lsetxattr, 189, ENC_REFUSAL_FILES, -1, 0, -1, -1, -1)            \
	X(removexattr, 197, ENC_REFUSAL_FILES, -1, 0, -1, -1, -1)          \
	X(lremovexattr, 198, ENC_REFUSAL_FILES, -1, 0, -1, -1, -1)

/* enc_refusal_event.unreadable: bits of the paths that could not be read */
#define ENC_REFUSAL_PATH_UNREADABLE 1u
#define ENC_REFUSAL_PATH2_UNREADABLE 2u

struct enc_refusal_event {
	struct enc_header h;
	__s64 result;  /* -errno */
	__u32 syscall; /* nr */
	__u32 section; /* enc_refusal_section */
	__s32 dirfd;   /* -100 (AT_FDCWD) when the path is not relative to a descriptor */
	__s32 dirfd2;
	__u32 flags;	  /* an open's flags */
	__u32 unreadable; /* ENC_REFUSAL_PATH*_UNREADABLE */
	char path[ENC_PATH_MAX];
	char path2[ENC_PATH_MAX]; /* rename, link: the new name */
};

/* ---- layout checks ----------------------------------------------------------------------- */

/* The BPF programs and user space (C++) share these structs byte for byte: their sizes and the
 * offsets that move when a member is added are checked in both compiles. A failure means the
 * two sides no longer agree: change both, and the expected figures here. */
#ifdef __cplusplus
#define ENC_ABI_ASSERT(cond, what) static_assert(cond, what)
#else
#define ENC_ABI_ASSERT(cond, what) _Static_assert(cond, what)
#endif
#define ENC_ABI_SIZE(s, n) ENC_ABI_ASSERT(sizeof(struct s) == (n), "sizeof(struct " #s ")")
#define ENC_ABI_OFFSET(s, f, n) \
	ENC_ABI_ASSERT(__builtin_offsetof(struct s, f) == (n), "offsetof(struct " #s ", " #f ")")

ENC_ABI_SIZE(enc_config, 2128);
ENC_ABI_OFFSET(enc_config, syscall_budget, 8);
ENC_ABI_OFFSET(enc_config, syscall_batch, 40);
ENC_ABI_OFFSET(enc_config, nrules, 68);
ENC_ABI_OFFSET(enc_config, rules_deny_network, 72);
ENC_ABI_OFFSET(enc_config, tool_denied_by, 80);
ENC_ABI_OFFSET(enc_config, tool_cost_micro, 1616);

ENC_ABI_SIZE(enc_state, 656);
ENC_ABI_OFFSET(enc_state, audited_opens, 632);
ENC_ABI_OFFSET(enc_state, connects, 104);
ENC_ABI_OFFSET(enc_state, tool_counts, 112);
ENC_ABI_OFFSET(enc_state, refusals, 624);

ENC_ABI_SIZE(enc_syscall_batch, 32);
ENC_ABI_OFFSET(enc_syscall_batch, killing, 24);

ENC_ABI_SIZE(enc_lpm4_key, 17);
ENC_ABI_OFFSET(enc_lpm4_key, addr, 13);
ENC_ABI_SIZE(enc_lpm6_key, 29);
ENC_ABI_OFFSET(enc_lpm6_key, addr, 13);
ENC_ABI_SIZE(enc_port_range, 4);
ENC_ABI_SIZE(enc_ports, 88);
ENC_ABI_OFFSET(enc_ports, ranges, 24);
ENC_ABI_SIZE(enc_dns_origin, 24);
ENC_ABI_SIZE(enc_tool_key, 24);
ENC_ABI_SIZE(enc_script_key, 264);

ENC_ABI_SIZE(enc_header, 40);
ENC_ABI_OFFSET(enc_header, kseq, 16);
ENC_ABI_OFFSET(enc_header, pid, 32);
ENC_ABI_SIZE(enc_exec_event, 480);
ENC_ABI_OFFSET(enc_exec_event, ppid, 40);
ENC_ABI_OFFSET(enc_exec_event, tool_count, 72);
ENC_ABI_OFFSET(enc_exec_event, filename, 96);
ENC_ABI_OFFSET(enc_exec_event, argv0, 352);
ENC_ABI_SIZE(enc_net_event, 96);
ENC_ABI_OFFSET(enc_net_event, port, 64);
ENC_ABI_OFFSET(enc_net_event, addr, 68);
ENC_ABI_OFFSET(enc_net_event, rule, 84);
ENC_ABI_SIZE(enc_unix_key, 120);
ENC_ABI_OFFSET(enc_unix_key, path, 12);
ENC_ABI_SIZE(enc_unix_event, 168);
ENC_ABI_OFFSET(enc_unix_event, path, 56);
ENC_ABI_SIZE(enc_rule_event, 344);
ENC_ABI_OFFSET(enc_rule_event, addr, 60);
ENC_ABI_OFFSET(enc_rule_event, path, 84);
ENC_ABI_SIZE(enc_budget_event, 64);
ENC_ABI_OFFSET(enc_budget_event, limit, 48);
ENC_ABI_SIZE(enc_open_key, 32);
ENC_ABI_SIZE(enc_open_count, 280);
ENC_ABI_OFFSET(enc_open_count, path, 24);
ENC_ABI_SIZE(enc_open_event, 344);
ENC_ABI_OFFSET(enc_open_event, dev, 320);
ENC_ABI_OFFSET(enc_open_event, result, 40);
ENC_ABI_OFFSET(enc_open_event, path, 64);
ENC_ABI_SIZE(enc_refusal_event, 584);
ENC_ABI_OFFSET(enc_refusal_event, result, 40);
ENC_ABI_OFFSET(enc_refusal_event, path, 72);
ENC_ABI_OFFSET(enc_refusal_event, path2, 328);

#endif /* ENCLOSURE_BPF_ABI_H */
