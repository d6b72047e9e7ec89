/* Path unix sockets: the enclosure's agent may connect (or send a datagram) only to the sockets
 * /network/unix names and to those under its own write grants and tmpfs. One under a read grant,
 * /proc or /dev (whose links lead back into the view) is refused with EACCES and a record, in
 * every network mode; a path elsewhere lies in the view's empty skeleton and is refused as not
 * found. Abstract sockets are left to Landlock's scoping (modes filtered and host) or the
 * network namespace (mode none); unnamed ones (autobind) reach nothing by name.
 * These cgroup hooks run before the kernel resolves the path, so the decision is on the path as
 * the agent spells it: a relative path or a "." or ".." segment is refused, since its text does
 * not say where it leads. Included by enclosure.bpf.c. */
#include "maps.bpf.h"

extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;

#define EACCES_ 13
#define ENOENT_ 2

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, MAX_ENCLOSURES * 64);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct enc_unix_key);
	__type(value, __u32); /* index in the plan's unix socket paths */
} unix_paths SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct enc_unix_key);
} unix_scratch SEC(".maps");

/* The sockets the agent bound itself (enclosure, device, inode of the socket file), noted when
 * bind returns: a connect admitted by the name of one of its own directories must end at one. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_ENCLOSURES * 16);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct enc_tool_key);
	__type(value, __u8);
} agent_sockets SEC(".maps");

/* Threads whose connect the hook admitted by the name of one of the agent's own directories,
 * until the connect returns: the name may have been a symlink (or renamed into place) that leads
 * out to a socket of others, which the path's text cannot show. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct enc_unix_key);
} own_unix_connects SEC(".maps");

/* One byte of the path in unix_scratch per bpf_loop step (one callback to verify, not 108
 * unrolled states): cuts the path at its first NUL or at the address's end and zeroes the rest,
 * so that it can be a trie key, and notes a "." or ".." segment. */
struct unix_path_scan {
	__u32 len; /* bytes of path the address holds */
	__u32 ended;
	__u32 segment; /* length of the segment so far */
	__u32 dots;    /* how many of its bytes are dots */
	__u32 dot_segment;
};

static long scan_unix_path_byte(__u64 i, void *ctx)
{
	struct unix_path_scan *s = ctx;
	__u32 zero = 0;
	struct enc_unix_key *key = bpf_map_lookup_elem(&unix_scratch, &zero);
	if (!key || i >= ENC_UNIX_PATH_MAX)
		return 1;
	char c = key->path[i];
	if (s->ended || i >= s->len || c == 0) {
		s->ended = 1;
		key->path[i] = 0;
		c = 0;
	}
	if (c == '/' || c == 0) {
		if (s->segment && s->segment == s->dots && s->dots <= 2)
			s->dot_segment = 1;
		s->segment = 0;
		s->dots = 0;
		return 0;
	}
	s->segment++;
	if (c == '.')
		s->dots++;
	return 0;
}

/* 0, or why the path's text cannot be matched (enc_unix_reason). */
static __always_inline __u32 clean_unix_path(const char *path, __u32 len)
{
	struct unix_path_scan scan = { .len = len };
	bpf_loop(ENC_UNIX_PATH_MAX, scan_unix_path_byte, &scan, 0);
	if (path[0] != '/')
		return ENC_UNIX_RELATIVE;
	return scan.dot_segment ? ENC_UNIX_DOT : 0;
}

static __always_inline void report_unix(struct enc_state *st, __u64 cgid, __u32 hook, __u32 reason,
					__u32 type, const char *path)
{
	struct enc_unix_event *e = reserve_record(st, cgid, ENC_EV_UNIX_DENY, sizeof(*e));
	if (!e)
		return;
	e->hook = hook;
	e->reason = reason;
	e->type = type;
	e->pad = 0;
	e->pad2 = 0;
	__builtin_memcpy(e->path, path, ENC_UNIX_PATH_MAX);
	e->path[ENC_UNIX_PATH_MAX - 1] = 0;
	bpf_ringbuf_submit(e, 0);
}

static __always_inline int decide_unix(struct bpf_sock_addr *ctx, __u32 hook)
{
	__u64 cgid = bpf_get_current_cgroup_id();
	struct enc_config *cfg = bpf_map_lookup_elem(&configs, &cgid);
	if (!cfg || !(cfg->flags & ENC_UNIX_SOCKETS))
		return 1;
	struct bpf_sock_addr_kern *sa = bpf_cast_to_kern_ctx(ctx);
	__u32 len = sa->uaddrlen;
	if (len <= 2)
		return 1; /* no name */
	__u32 zero = 0;
	struct enc_unix_key *key = bpf_map_lookup_elem(&unix_scratch, &zero);
	if (!key)
		return 0;
	if (bpf_probe_read_kernel(key->path, sizeof(key->path), (char *)sa->uaddr + 2))
		return 0;
	if (key->path[0] == 0)
		return 1; /* abstract */
	__u32 reason = clean_unix_path(key->path, len - 2);
	key->prefixlen = 64 + 8 * ENC_UNIX_PATH_MAX;
	__builtin_memcpy(key->cgroup_id, &cgid, sizeof(key->cgroup_id));
	if (!reason) {
		__u32 *verdict = bpf_map_lookup_elem(&unix_paths, key);
		if (verdict && *verdict == ENC_UNIX_NAMED)
			return 1;
		if (verdict && *verdict == ENC_UNIX_OWN) {
			if (hook == ENC_UNIX_CONNECT) {
				__u32 tid = (__u32)bpf_get_current_pid_tgid();
				bpf_map_update_elem(&own_unix_connects, &tid, key, BPF_ANY);
			}
			return 1;
		}
		if (!verdict) {
			/* In the view's empty skeleton: no socket there to refuse. */
			bpf_set_retval(-ENOENT_);
			return 0;
		}
		reason = ENC_UNIX_NOT_NAMED;
	}
	struct enc_state *st = state_of(cgid);
	if (st) {
		__sync_fetch_and_add(&st->net_denied, 1);
		report_unix(st, cgid, hook, reason, ctx->type, key->path);
	}
	bpf_set_retval(-EACCES_);
	return 0;
}

/* Debian 12's libbpf (1.1) predates the "cgroup/connect_unix" and "cgroup/sendmsg_unix" section
 * names: the programs are declared as sock_addr programs and the loader sets their attach types
 * (BPF_CGROUP_UNIX_CONNECT, BPF_CGROUP_UNIX_SENDMSG) before loading them. */
SEC("cgroup/connect4")
int enc_connect_unix(struct bpf_sock_addr *ctx)
{
	return decide_unix(ctx, ENC_UNIX_CONNECT);
}

SEC("cgroup/sendmsg4")
int enc_sendmsg_unix(struct bpf_sock_addr *ctx)
{
	return decide_unix(ctx, ENC_UNIX_SENDMSG);
}

/* ---- at the return of bind and connect (called from enc_sys_exit) ---- */

#define NR_CONNECT_ 42
#define NR_BIND_ 49
#define AF_UNIX_ 1
#define SIGKILL_UNIX_ 9

/* The unix socket behind descriptor `fd` of the current task, or NULL. */
static __always_inline struct unix_sock *unix_sock_of_fd(long fd)
{
	struct file *f = file_of_fd(fd);
	if (!f)
		return NULL;
	struct socket *sock = BPF_CORE_READ(f, private_data);
	struct sock *sk = sock ? BPF_CORE_READ(sock, sk) : NULL;
	if (!sk || BPF_CORE_READ(sk, __sk_common.skc_family) != AF_UNIX_)
		return NULL;
	return (struct unix_sock *)sk;
}

/* The identity of the file a unix socket is bound to; 0 when it has none. */
static __always_inline int unix_socket_file(struct unix_sock *u, __u64 cgid,
					    struct enc_tool_key *key)
{
	struct dentry *d = BPF_CORE_READ(u, path.dentry);
	struct inode *inode = d ? BPF_CORE_READ(d, d_inode) : NULL;
	if (!inode)
		return 0;
	inode_key(key, cgid, inode);
	return 1;
}

/* A bind of the agent's: the socket file is its own. A connect admitted by the name of one of
 * its own directories: the socket it reached must be one of those, else the name led elsewhere
 * (a symlink, a rename) and the caller is killed before it returns to use the connection. */
static __always_inline void check_unix_peer(__u64 cgid, struct pt_regs *regs, long ret)
{
	long nr = regs->orig_ax;
	if (nr != NR_CONNECT_ && nr != NR_BIND_)
		return;
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct enc_unix_key *pending = NULL;
	if (nr == NR_CONNECT_) {
		pending = bpf_map_lookup_elem(&own_unix_connects, &tid);
		if (!pending)
			return;
	}
	struct unix_sock *u = ret == 0 ? unix_sock_of_fd(regs->di) : NULL;
	struct enc_tool_key key = {};
	if (nr == NR_BIND_) {
		__u8 one = 1;
		if (u && unix_socket_file(u, cgid, &key))
			bpf_map_update_elem(&agent_sockets, &key, &one, BPF_ANY);
		return;
	}
	struct unix_sock *peer = u ? (struct unix_sock *)BPF_CORE_READ(u, peer) : NULL;
	int own = peer && unix_socket_file(peer, cgid, &key) &&
		  bpf_map_lookup_elem(&agent_sockets, &key);
	if (u && !own) {
		struct enc_state *st = state_of(cgid);
		if (st) {
			__sync_fetch_and_add(&st->net_denied, 1);
			report_unix(st, cgid, ENC_UNIX_CONNECT, ENC_UNIX_NOT_OWN,
				    BPF_CORE_READ(u, sk.sk_type), pending->path);
		}
		bpf_send_signal(SIGKILL_UNIX_);
	}
	bpf_map_delete_elem(&own_unix_connects, &tid);
}
