/* Cutting the TCP sockets of an enclosure whose composition rule denies network (iter/tcp): run
 * by the supervisor once such a rule fired, it destroys every TCP socket (IPv4 and IPv6) whose
 * cgroup is such an enclosure, so that the agent's calls on connections made before the rule
 * fail (ECONNABORTED, then EPIPE) instead of queueing data that cgroup_skb/egress drops. UDP
 * sockets are left alone: the drop already fails their sends with EPERM, which destroying them
 * would turn into EDESTADDRREQ. The decision is the maps' (rules fired & rules that deny
 * network), so one run of the iterator serves every enclosure. Included by enclosure.bpf.c. */
#include "maps.bpf.h"

extern int bpf_sock_destroy(struct sock_common *sk) __ksym;

/* Sockets destroyed by the iterator, all enclosures together (read by the loader). */
__u64 sockets_destroyed = 0;

static __always_inline int network_cut(struct sock *sk)
{
	__u64 cgid = BPF_CORE_READ(sk, sk_cgrp_data.cgroup, kn, id);
	struct enc_config *cfg = bpf_map_lookup_elem(&configs, &cgid);
	if (!cfg)
		return 0;
	struct enc_state *st = state_of(cgid);
	return st && (st->rules_fired & cfg->rules_deny_network);
}

SEC("iter/tcp")
int enc_cut_tcp(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;
	if (!skc)
		return 0;
	/* Time-wait and request sockets are no full sockets (no cgroup) and send no data. */
	__u8 state = BPF_CORE_READ(skc, skc_state);
	if (state == TCP_TIME_WAIT || state == TCP_NEW_SYN_RECV)
		return 0;
	if (network_cut((struct sock *)skc) && bpf_sock_destroy(skc) == 0)
		__sync_fetch_and_add(&sockets_destroyed, 1);
	return 0;
}
