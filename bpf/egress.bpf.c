/* Filtered egress (network mode "filtered"): cgroup/connect4, connect6, sendmsg4, sendmsg6 and
 * sock_create on the enclosure's cgroup decide from LPM tries of (enclosure, protocol, address)
 * whether a destination and port are admitted; cgroup_skb/egress drops and counts any packet to
 * an address no rule admits (defense in depth) and counts bytes for budgets.egress_bytes.
 * In every network mode, cgroup_skb/egress also drops every packet of an enclosure once one of
 * its composition rules that deny network fired (sockets connected earlier included).
 * Included by enclosure.bpf.c. */
#include "maps.bpf.h"

#define AF_INET 2
#define AF_INET6 10
#define SOCK_STREAM 1
#define SOCK_DGRAM 2
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define IPPROTO_MPTCP 262
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD

/* The protocol a rule is written for: MPTCP counts as TCP. */
static __always_inline __u8 rule_protocol(__u32 type, __u32 protocol)
{
	if (protocol == IPPROTO_TCP || protocol == IPPROTO_MPTCP)
		return IPPROTO_TCP;
	if (protocol == IPPROTO_UDP)
		return IPPROTO_UDP;
	if (protocol == 0)
		return type == SOCK_DGRAM ? IPPROTO_UDP : IPPROTO_TCP;
	return 0;
}

static __always_inline int port_admitted(const struct enc_ports *p, __u16 port)
{
	__u32 n = p->nranges;
	for (int i = 0; i < ENC_MAX_PORT_RANGES; i++) {
		if (i >= n)
			break;
		if (port >= p->ranges[i].lo && port <= p->ranges[i].hi)
			return 1;
	}
	return 0;
}

static __always_inline const struct enc_ports *lookup4(__u64 cgid, __u8 proto, __u32 addr_be)
{
	struct enc_lpm4_key key = {};
	key.prefixlen = 72 + 32;
	key.cgroup_id = cgid;
	key.protocol = proto;
	__builtin_memcpy(key.addr, &addr_be, 4);
	return bpf_map_lookup_elem(&egress4, &key);
}

static __always_inline const struct enc_ports *lookup6(__u64 cgid, __u8 proto, const __u32 *addr_be)
{
	struct enc_lpm6_key key = {};
	key.prefixlen = 72 + 128;
	key.cgroup_id = cgid;
	key.protocol = proto;
	__builtin_memcpy(key.addr, addr_be, 16);
	return bpf_map_lookup_elem(&egress6, &key);
}

static __always_inline int is_v4_mapped(const __u32 *a)
{
	return a[0] == 0 && a[1] == 0 && a[2] == bpf_htonl(0x0000ffff);
}

static __always_inline void report_net(struct enc_state *st, __u64 cgid, __u32 event, __u32 hook,
				       __u32 reason, __u32 family, __u32 type, __u32 protocol,
				       __u16 port, const __u32 *addr, int v6, __u32 rule_index,
				       __u32 rule)
{
	struct enc_net_event *e = reserve_record(st, cgid, event, sizeof(*e));
	if (!e)
		return;
	e->hook = hook;
	e->reason = reason;
	e->family = family;
	e->type = type;
	e->protocol = protocol;
	e->rule_index = rule_index;
	e->rule = rule;
	e->pad2 = 0;
	e->port = port;
	e->pad = 0;
	__builtin_memset(e->addr, 0, sizeof(e->addr));
	if (v6) {
		__builtin_memcpy(e->addr, addr, 16);
	} else {
		__builtin_memcpy(e->addr, addr, 4);
	}
	bpf_ringbuf_submit(e, 0);
}

/* Any port-53 destination goes to the enclosure's resolver: the original destination is kept
 * in the socket's storage so that recvmsg can make replies appear to come from it. */
static __always_inline int redirect_dns(struct bpf_sock_addr *ctx, struct enc_config *cfg, int v6)
{
	struct bpf_sock *sk = ctx->sk;
	if (!sk)
		return 0;
	struct enc_dns_origin *origin =
		bpf_sk_storage_get(&dns_origins, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!origin)
		return 0;
	origin->port = (__u16)ctx->user_port;
	if (!v6) {
		origin->family = AF_INET;
		origin->addr[0] = ctx->user_ip4;
		ctx->user_ip4 = cfg->dns_ip4;
		ctx->user_port = cfg->dns_port4;
		return 1;
	}
	origin->family = AF_INET6;
	origin->addr[0] = ctx->user_ip6[0];
	origin->addr[1] = ctx->user_ip6[1];
	origin->addr[2] = ctx->user_ip6[2];
	origin->addr[3] = ctx->user_ip6[3];
	if (is_v4_mapped(origin->addr)) {
		/* An IPv4 destination through an IPv6 socket: the IPv4 resolver, mapped. */
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = bpf_htonl(0x0000ffff);
		ctx->user_ip6[3] = cfg->dns_ip4;
		ctx->user_port = cfg->dns_port4;
	} else {
		ctx->user_ip6[0] = cfg->dns_ip6[0];
		ctx->user_ip6[1] = cfg->dns_ip6[1];
		ctx->user_ip6[2] = cfg->dns_ip6[2];
		ctx->user_ip6[3] = cfg->dns_ip6[3];
		ctx->user_port = cfg->dns_port6;
	}
	return 1;
}

/* Shared decision of the four sock_addr hooks. Returns 1 to admit, 0 to refuse (EPERM). */
static __always_inline int decide(struct bpf_sock_addr *ctx, __u32 hook, int v6, int is_connect)
{
	__u64 cgid = bpf_get_current_cgroup_id();
	struct enc_config *cfg = bpf_map_lookup_elem(&configs, &cgid);
	if (!cfg || !(cfg->flags & ENC_NET_FILTERED))
		return 1;
	struct enc_state *st = state_of(cgid);
	if (!st)
		return 0;
	__u32 type = ctx->type;
	__u32 protocol = ctx->protocol;
	__u8 proto = rule_protocol(type, protocol);
	__u16 port = bpf_ntohs((__u16)ctx->user_port);
	if ((cfg->flags & ENC_DNS_REDIRECT) && port == 53 && proto && redirect_dns(ctx, cfg, v6))
		return 1;
	__u32 addr[4] = {};
	int family_v6 = v6;
	const struct enc_ports *p = 0;
	if (!v6) {
		addr[0] = ctx->user_ip4;
		if (proto)
			p = lookup4(cgid, proto, addr[0]);
	} else {
		addr[0] = ctx->user_ip6[0];
		addr[1] = ctx->user_ip6[1];
		addr[2] = ctx->user_ip6[2];
		addr[3] = ctx->user_ip6[3];
		if (proto) {
			if (is_v4_mapped(addr)) {
				/* An IPv4-mapped IPv6 destination is the IPv4 destination. */
				p = lookup4(cgid, proto, addr[3]);
			} else {
				p = lookup6(cgid, proto, addr);
			}
		}
	}
	/* A composition rule that fired denies all network, or this destination. */
	__u64 fired = st->rules_fired;
	__u64 denying = fired & (cfg->rules_deny_network | (p ? p->denied_by : 0));
	if (denying) {
		__sync_fetch_and_add(&st->net_denied, 1);
		report_net(st, cgid, ENC_EV_NET_DENY, hook, ENC_NET_RULE,
			   family_v6 ? AF_INET6 : AF_INET, type, protocol, port, addr, v6,
			   p ? p->rule_index : ~0u, lowest_bit(denying));
		return 0;
	}
	if (p && port_admitted(p, port)) {
		if (is_connect) {
			__sync_fetch_and_add(&st->connects, 1);
			report_net(st, cgid, ENC_EV_CONNECT, hook, 0,
				   family_v6 ? AF_INET6 : AF_INET, type, protocol, port, addr, v6,
				   p->rule_index, 0);
		}
		/* Connecting here fires composition rules (before connect returns). */
		if (p->triggers & ~fired) {
			fire_rules(st, cgid, p->triggers, ENC_TRIGGER_CONNECT, -1, p->rule_index,
				   family_v6 ? AF_INET6 : AF_INET, port, addr, 0);
		}
		return 1;
	}
	__sync_fetch_and_add(&st->net_denied, 1);
	report_net(st, cgid, ENC_EV_NET_DENY, hook, p ? ENC_NET_PORT : ENC_NET_NO_RULE,
		   family_v6 ? AF_INET6 : AF_INET, type, protocol, port, addr, v6,
		   p ? p->rule_index : ~0u, 0);
	return 0;
}

SEC("cgroup/connect4")
int enc_connect4(struct bpf_sock_addr *ctx)
{
	return decide(ctx, ENC_HOOK_CONNECT4, 0, 1);
}

SEC("cgroup/connect6")
int enc_connect6(struct bpf_sock_addr *ctx)
{
	return decide(ctx, ENC_HOOK_CONNECT6, 1, 1);
}

SEC("cgroup/sendmsg4")
int enc_sendmsg4(struct bpf_sock_addr *ctx)
{
	return decide(ctx, ENC_HOOK_SENDMSG4, 0, 0);
}

SEC("cgroup/sendmsg6")
int enc_sendmsg6(struct bpf_sock_addr *ctx)
{
	return decide(ctx, ENC_HOOK_SENDMSG6, 1, 0);
}

/* Replies of the enclosure's resolver appear to come from the destination the agent chose. */
static __always_inline int restore_dns_source(struct bpf_sock_addr *ctx, int v6)
{
	__u64 cgid = bpf_get_current_cgroup_id();
	struct enc_config *cfg = bpf_map_lookup_elem(&configs, &cgid);
	if (!cfg || !(cfg->flags & ENC_DNS_REDIRECT) || !ctx->sk)
		return 1;
	struct enc_dns_origin *origin = bpf_sk_storage_get(&dns_origins, ctx->sk, 0, 0);
	if (!origin)
		return 1;
	if (!v6) {
		if (ctx->user_ip4 != cfg->dns_ip4 || (__u16)ctx->user_port != cfg->dns_port4)
			return 1;
		if (origin->family != AF_INET)
			return 1;
		ctx->user_ip4 = origin->addr[0];
		ctx->user_port = origin->port;
		return 1;
	}
	__u32 a0 = ctx->user_ip6[0], a1 = ctx->user_ip6[1], a2 = ctx->user_ip6[2],
	      a3 = ctx->user_ip6[3];
	int from_v4 = a0 == 0 && a1 == 0 && a2 == bpf_htonl(0x0000ffff) && a3 == cfg->dns_ip4 &&
		      (__u16)ctx->user_port == cfg->dns_port4;
	int from_v6 = a0 == cfg->dns_ip6[0] && a1 == cfg->dns_ip6[1] && a2 == cfg->dns_ip6[2] &&
		      a3 == cfg->dns_ip6[3] && (__u16)ctx->user_port == cfg->dns_port6;
	if ((!from_v4 && !from_v6) || origin->family != AF_INET6)
		return 1;
	ctx->user_ip6[0] = origin->addr[0];
	ctx->user_ip6[1] = origin->addr[1];
	ctx->user_ip6[2] = origin->addr[2];
	ctx->user_ip6[3] = origin->addr[3];
	ctx->user_port = origin->port;
	return 1;
}

SEC("cgroup/recvmsg4")
int enc_recvmsg4(struct bpf_sock_addr *ctx)
{
	return restore_dns_source(ctx, 0);
}

SEC("cgroup/recvmsg6")
int enc_recvmsg6(struct bpf_sock_addr *ctx)
{
	return restore_dns_source(ctx, 1);
}

SEC("cgroup/getpeername4")
int enc_getpeername4(struct bpf_sock_addr *ctx)
{
	return restore_dns_source(ctx, 0);
}

SEC("cgroup/getpeername6")
int enc_getpeername6(struct bpf_sock_addr *ctx)
{
	return restore_dns_source(ctx, 1);
}

/* inet and inet6 sockets only (other families never reach this hook; seccomp limits them to
 * unix and netlink route): TCP, MPTCP and UDP; no raw sockets, no ICMP "ping" sockets, no SCTP. */
SEC("cgroup/sock_create")
int enc_sock_create(struct bpf_sock *sk)
{
	__u64 cgid = bpf_get_current_cgroup_id();
	struct enc_config *cfg = bpf_map_lookup_elem(&configs, &cgid);
	if (!cfg || !(cfg->flags & ENC_NET_FILTERED))
		return 1;
	__u32 type = sk->type;
	__u32 protocol = sk->protocol;
	int ok = (type == SOCK_STREAM &&
		  (protocol == IPPROTO_TCP || protocol == IPPROTO_MPTCP || protocol == 0)) ||
		 (type == SOCK_DGRAM && (protocol == IPPROTO_UDP || protocol == 0));
	if (ok)
		return 1;
	struct enc_state *st = state_of(cgid);
	if (st) {
		__sync_fetch_and_add(&st->net_denied, 1);
		__u32 none[4] = {};
		report_net(st, cgid, ENC_EV_NET_DENY, ENC_HOOK_SOCK_CREATE, ENC_NET_SOCKET_TYPE,
			   sk->family, type, protocol, 0, none, 0, ~0u, 0);
	}
	return 0;
}

/* A packet's destination: family, layer-4 protocol, address and port (0 for other protocols).
 * Returns 0, or -1 when the packet is neither IPv4 nor IPv6 or too short. */
struct skb_destination {
	__u32 addr[4];
	__u8 l4;
	int v6;
	__u16 port;
	__u16 dport_be;
};

static __always_inline int parse_destination(struct __sk_buff *skb, struct skb_destination *d)
{
	__u32 l4_off = 0;
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		__u8 vihl = 0;
		if (bpf_skb_load_bytes(skb, 0, &vihl, 1) || bpf_skb_load_bytes(skb, 9, &d->l4, 1) ||
		    bpf_skb_load_bytes(skb, 16, &d->addr[0], 4))
			return -1;
		l4_off = (vihl & 0x0f) * 4;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		d->v6 = 1;
		if (bpf_skb_load_bytes(skb, 6, &d->l4, 1) ||
		    bpf_skb_load_bytes(skb, 24, d->addr, 16))
			return -1;
		l4_off = 40;
	} else {
		return -1;
	}
	if (d->l4 == IPPROTO_TCP || d->l4 == IPPROTO_UDP) {
		if (bpf_skb_load_bytes(skb, l4_off + 2, &d->dport_be, 2))
			return -1;
		d->port = bpf_ntohs(d->dport_be);
	}
	return 0;
}

/* Sockets already reported as cut by a composition rule (bits of the rules reported). */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u64);
} rule_cut_reports SEC(".maps");

/* A composition rule that denies network has fired: every packet of the enclosure is dropped,
 * on sockets connected before the rule as well as new ones (UDP senders get EPERM; TCP data
 * stays queued until the supervisor destroys the socket). One deny event per socket and rule;
 * a packet without a full socket is reported like the drops of the egress rules (powers of two). */
static __always_inline int drop_for_rule(struct __sk_buff *skb, struct enc_state *st, __u64 cgid,
					 __u64 denying)
{
	__u64 dropped = __sync_fetch_and_add(&st->egress_dropped, 1);
	__u32 rule = lowest_bit(denying);
	int report = (dropped & (dropped + 1)) == 0;
	struct bpf_sock *sk = skb->sk;
	if (sk)
		sk = bpf_sk_fullsock(sk);
	if (sk) {
		__u64 *reported =
			bpf_sk_storage_get(&rule_cut_reports, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
		report = 0;
		if (reported && !(*reported & (1ULL << rule))) {
			*reported |= 1ULL << rule;
			report = 1;
		}
	}
	if (!report)
		return 0;
	struct skb_destination d = {};
	parse_destination(skb, &d);
	__sync_fetch_and_add(&st->net_denied, 1);
	report_net(st, cgid, ENC_EV_EGRESS_DROP, ENC_HOOK_SKB_EGRESS, ENC_NET_RULE,
		   d.v6 ? AF_INET6 : AF_INET, 0, d.l4, d.port, d.addr, d.v6, ~0u, rule);
	return 0;
}

/* Every packet the enclosure sends: dropped when a composition rule that denies network fired
 * (in every network mode), or when no rule admits its destination (a second layer under the
 * socket hooks, filtered mode); counted for budgets.egress_bytes. */
SEC("cgroup_skb/egress")
int enc_skb_egress(struct __sk_buff *skb)
{
	__u64 cgid = bpf_skb_cgroup_id(skb);
	struct enc_config *cfg = bpf_map_lookup_elem(&configs, &cgid);
	if (!cfg)
		return 1;
	struct enc_state *st = state_of(cgid);
	if (!st)
		return 0;
	__u64 denying = st->rules_fired & cfg->rules_deny_network;
	if (denying)
		return drop_for_rule(skb, st, cgid, denying);
	if (cfg->flags & ENC_NET_FILTERED) {
		struct skb_destination d = {};
		const struct enc_ports *p = 0;
		if (parse_destination(skb, &d))
			return 0;
		if (d.l4 == IPPROTO_TCP || d.l4 == IPPROTO_UDP) {
			/* Traffic to the enclosure's own resolver (after redirection). */
			if (cfg->flags & ENC_DNS_REDIRECT) {
				__u32 *addr = d.addr;
				int to_v4 = !d.v6 && addr[0] == cfg->dns_ip4 &&
					    d.dport_be == cfg->dns_port4;
				int to_mapped = d.v6 && is_v4_mapped(addr) &&
						addr[3] == cfg->dns_ip4 &&
						d.dport_be == cfg->dns_port4;
				int to_v6 =
					d.v6 && addr[0] == cfg->dns_ip6[0] &&
					addr[1] == cfg->dns_ip6[1] && addr[2] == cfg->dns_ip6[2] &&
					addr[3] == cfg->dns_ip6[3] && d.dport_be == cfg->dns_port6;
				if (to_v4 || to_mapped || to_v6)
					goto admitted;
			}
			if (!d.v6) {
				p = lookup4(cgid, d.l4, d.addr[0]);
			} else if (is_v4_mapped(d.addr)) {
				p = lookup4(cgid, d.l4, d.addr[3]);
			} else {
				p = lookup6(cgid, d.l4, d.addr);
			}
		}
		if (!p || !port_admitted(p, d.port)) {
			__u64 dropped = __sync_fetch_and_add(&st->egress_dropped, 1);
			/* One record per power of two drops: a flood cannot drown the stream. */
			if ((dropped & (dropped + 1)) == 0) {
				report_net(st, cgid, ENC_EV_EGRESS_DROP, ENC_HOOK_SKB_EGRESS,
					   ENC_NET_NO_RULE, d.v6 ? AF_INET6 : AF_INET, 0, d.l4,
					   d.port, d.addr, d.v6, ~0u, 0);
			}
			return 0;
		}
	}
admitted:;
	__u64 total = __sync_fetch_and_add(&st->egress_bytes, skb->len) + skb->len;
	if ((cfg->flags & ENC_EGRESS_BUDGET) && total > cfg->egress_bytes_budget) {
		report_budget(st, cgid, ENC_BUDGET_EGRESS_BYTES, -1, cfg->egress_bytes_budget,
			      total);
		return 0;
	}
	return 1;
}
