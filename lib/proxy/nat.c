// SPDX-License-Identifier: MIT
/*
 * kha proxy --mode nat: the entry address is DNAT'ed by the kernel (nftables) to one healthy
 * backend per new connection; kha keeps the table in step with membership and health. This is
 * the glue on the control thread (netlink sockets, the entry address, conntrack); the table
 * itself is built in nat-batch.c.
 *
 * Invariants (docs/internals/proxy.md, "NAT mode"):
 * - the table `spec.table` (family ip) is kha's alone and always written whole, in one nftables
 *   transaction (add table, delete table, add table and its content): a leftover table from a
 *   killed kha is replaced, never duplicated, and a packet sees the old or the new rules;
 * - only the control thread touches the sockets; every write is acknowledged (or its error
 *   logged) before the next one, so the installed plan (`cur`) is what the kernel holds;
 * - the dummy interface carries the entry address; it is created (or adopted, when a killed kha
 *   left it) at start and deleted at exit, with the table.
 */
#include <arpa/inet.h>
#include <linux/capability.h>
#include <linux/if_link.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <net/if.h>
#include <string.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <libmnl/libmnl.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include <libnftnl/common.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>

#include "nat-internal.h"
#include "proxy-internal.h"
#include "kha/log.h"
#include "kha/parse.h"
#include "kha/rtnl.h"
#include "kha/banned.h"

#define NAT_REPLY_TIMEOUT_S 5
/* how often kha checks that its table is still there (a firewall reload may flush it) */
#define NAT_VERIFY_INTERVAL_US (5 * KHA_USEC_PER_SEC)

/* ---- glue ---- */

struct kha_proxy_nat {
	struct kha_proxy_nat_spec spec;
	struct mnl_socket *nft, *rt;
	uint32_t seq;
	int ifindex;
	char ifname[IFNAMSIZ], label[IFNAMSIZ];
	bool link_ours, addr_ours;
	bool installed;
	struct kha_proxy_nat_plan cur;
	uint64_t commits, commit_failures, ct_deleted, sockets_aborted, rewrites;
	struct kha_loop_source *verify;
	char last_error[KHA_DIAG_MAX];
};

int kha_proxy__nat_validate(const struct kha_proxy_config *cfg, struct kha_diag *d)
{
	struct sockaddr_storage ss;
	socklen_t len;
	const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;

	if (kha_parse_sockaddr(cfg->listen, &ss, &len) < 0 || ss.ss_family != AF_INET)
		return kha_diag_set(
			d, EINVAL, "--mode nat: listen address '%s': expected an IPv4 address:port",
			cfg->listen);
	if ((ntohl(sin->sin_addr.s_addr) >> 24) == 127 || sin->sin_addr.s_addr == INADDR_ANY)
		return kha_diag_set(
			d, EINVAL,
			"--mode nat: listen address '%s' must be a dedicated address (such as "
			"169.254.20.1:443), not loopback or 0.0.0.0: see docs/proxy.md",
			cfg->listen);
	if (!ntohs(sin->sin_port))
		return kha_diag_set(d, EINVAL, "--mode nat: listen address '%s' needs a port",
				    cfg->listen);
	if (!cfg->nat_name[0] || strlen(cfg->nat_name) >= IFNAMSIZ ||
	    strspn(cfg->nat_name, "abcdefghijklmnopqrstuvwxyz0123456789-_") !=
		    strlen(cfg->nat_name))
		return kha_diag_set(d, EINVAL,
				    "--nat-name '%s': expected 1-15 characters of a-z 0-9 - _",
				    cfg->nat_name);
	return 0;
}

static bool have_net_admin(void)
{
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct c[_LINUX_CAPABILITY_U32S_3] = {};

	if (syscall(SYS_capget, &h, c) < 0)
		return true; /* cannot tell: let the kernel say */
	return c[CAP_NET_ADMIN / 32].effective & (1U << (CAP_NET_ADMIN % 32));
}

static int perm_error(struct kha_diag *d, const char *what)
{
	return kha_diag_set(d, EPERM,
			    "--mode nat needs CAP_NET_ADMIN (%s was refused): run as root or grant "
			    "the capability (see docs/proxy.md)",
			    what);
}

/* Sends len bytes of requests with seq in [first, last] and waits for nacks replies. */
static int nl_exchange(struct mnl_socket *nl, const void *buf, size_t len, uint32_t first,
		       uint32_t last, unsigned nacks, struct kha_proxy_nat_acks *acks)
{
	char rbuf[16384] __attribute__((aligned(8)));
	int fd = mnl_socket_get_fd(nl);

	memset(acks, 0, sizeof(*acks));
	if (len > 100000) {
		int sz = (int)len * 2;
		kha_ignore(setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof(sz)));
	}
	if (mnl_socket_sendto(nl, buf, len) < 0)
		return -errno;
	while (acks->acked < nacks && !acks->error) {
		ssize_t n = recv(fd, rbuf, sizeof(rbuf), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		if (kha_proxy__nat_parse_acks(rbuf, (size_t)n, first, last, acks) < 0)
			return -EBADMSG;
	}
	/* after an error the kernel may still answer the other requests: drop those replies */
	while (acks->error && recv(fd, rbuf, sizeof(rbuf), MSG_DONTWAIT) > 0)
		;
	return acks->error;
}

static int rt_request(struct kha_proxy_nat *nat, struct nlmsghdr *nlh,
		      struct kha_proxy_nat_acks *acks)
{
	nlh->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
	nlh->nlmsg_seq = ++nat->seq;
	return nl_exchange(nat->rt, nlh, nlh->nlmsg_len, nlh->nlmsg_seq, nlh->nlmsg_seq, 1, acks);
}

/* the entry address, /32, on nat->ifindex with nat->label: added or removed */
static int addr_request(struct kha_proxy_nat *nat, uint16_t type, struct kha_proxy_nat_acks *acks)
{
	char buf[KHA_RTNL_ADDR_MSG_SIZE] __attribute__((aligned(8))) = {};
	struct kha_rtnl_addr a = {.family = AF_INET,
				  .addr = &nat->spec.entry.s_addr,
				  .prefixlen = 32,
				  .ifindex = (unsigned)nat->ifindex,
				  .label = nat->label};

	return rt_request(nat,
			  kha_rtnl_addr_msg(buf, type,
					    type == RTM_NEWADDR ? NLM_F_CREATE | NLM_F_EXCL : 0,
					    &a),
			  acks);
}

static int link_create(struct kha_proxy_nat *nat, struct kha_diag *d)
{
	char buf[512] __attribute__((aligned(8))) = {};
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct ifinfomsg *ifi;
	struct nlattr *nest;
	struct kha_proxy_nat_acks acks;
	int r;

	nlh->nlmsg_type = RTM_NEWLINK;
	nlh->nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL;
	ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_flags = IFF_UP;
	ifi->ifi_change = IFF_UP;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, nat->spec.table);
	nest = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
	mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "dummy");
	mnl_attr_nest_end(nlh, nest);
	r = rt_request(nat, nlh, &acks);
	if (r == -EPERM)
		return perm_error(d, "creating an interface");
	if (r == -EOPNOTSUPP) {
		/* a kernel without dummy interfaces: the address goes on lo, labelled as ours */
		snprintf(nat->ifname, sizeof(nat->ifname), "lo");
		snprintf(nat->label, sizeof(nat->label), "lo:%.12s", nat->spec.table);
		kha_info("no dummy interfaces in this kernel, the entry address goes on lo",
			 "label=%s", KHA_LOGQ(nat->label));
	} else if (r < 0 && r != -EEXIST) {
		return kha_diag_set(d, -r, "cannot create the dummy interface %s: %s",
				    nat->spec.table, strerror(-r));
	} else {
		if (r == -EEXIST)
			kha_info("adopting the dummy interface a previous kha left", "interface=%s",
				 KHA_LOGQ(nat->spec.table));
		nat->link_ours = true;
		snprintf(nat->ifname, sizeof(nat->ifname), "%s", nat->spec.table);
		snprintf(nat->label, sizeof(nat->label), "%s", nat->spec.table);
	}
	nat->ifindex = (int)if_nametoindex(nat->ifname);
	if (!nat->ifindex)
		return kha_diag_set(d, errno, "interface %s: %s", nat->ifname, strerror(errno));
	/* up (an adopted one may have been set down) */
	memset(buf, 0, sizeof(buf));
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = RTM_NEWLINK;
	ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_index = nat->ifindex;
	ifi->ifi_flags = IFF_UP;
	ifi->ifi_change = IFF_UP;
	r = rt_request(nat, nlh, &acks);
	if (r < 0)
		return kha_diag_set(d, -r, "cannot set interface %s up: %s", nat->ifname,
				    strerror(-r));
	r = addr_request(nat, RTM_NEWADDR, &acks);
	if (r < 0 && r != -EEXIST)
		return kha_diag_set(d, -r, "cannot add the entry address to %s: %s", nat->ifname,
				    strerror(-r));
	nat->addr_ours = true;
	return 0;
}

static void link_delete(struct kha_proxy_nat *nat)
{
	char buf[256] __attribute__((aligned(8))) = {};
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct ifinfomsg *ifi;
	struct kha_proxy_nat_acks acks;
	int r;

	nlh->nlmsg_type = RTM_DELLINK;
	ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_index = nat->ifindex;
	r = rt_request(nat, nlh, &acks);
	if (r < 0 && r != -ENODEV)
		kha_error("cannot remove the dummy interface", "interface=%s error=\"%s\"",
			  KHA_LOGQ(nat->ifname), strerror(-r));
}

static int commit(struct kha_proxy_nat *nat, const struct kha_proxy_nat_plan *plan, bool del_only,
		  struct kha_diag *d)
{
	struct kha_proxy_nat_acks acks;
	char *buf = NULL;
	unsigned nacks;
	uint32_t first = nat->seq + 1;
	int len, r;

	len = kha_proxy__nat_batch(&nat->spec, plan, del_only, first, &buf, &nacks);
	if (len < 0)
		return kha_diag_set(d, ENOMEM, "out of memory");
	nat->seq = first + nacks + 1;
	r = nl_exchange(nat->nft, buf, (size_t)len, first, nat->seq, nacks, &acks);
	free(buf);
	if (r == -EPERM)
		return perm_error(d, "writing an nftables table");
	if (r < 0 && acks.error)
		return kha_diag_set(d, -r, "nftables %s refused: %s", acks.where, strerror(-r));
	if (r < 0)
		return kha_diag_set(d, -r, "nftables: %s", strerror(-r));
	return 0;
}

int kha_proxy__nat_new(struct kha_proxy *p, struct kha_diag *d, struct kha_proxy_nat **ret)
{
	struct kha_proxy_nat *nat;
	struct sockaddr_storage ss;
	socklen_t len;
	struct timeval tv = {.tv_sec = NAT_REPLY_TIMEOUT_S};
	int one = 1, r;

	if (!have_net_admin())
		return perm_error(d, "the capability check");
	nat = calloc(1, sizeof(*nat));
	if (!nat)
		return kha_diag_set(d, ENOMEM, "out of memory");
	snprintf(nat->spec.table, sizeof(nat->spec.table), "%s", p->cfg.nat_name);
	kha_ignore(kha_parse_sockaddr(p->cfg.listen, &ss, &len)); /* validated */
	nat->spec.entry = ((struct sockaddr_in *)&ss)->sin_addr;
	nat->spec.port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	nat->spec.prerouting = p->cfg.nat_prerouting;
	if (getrandom(&nat->spec.hash_seed, sizeof(nat->spec.hash_seed), 0) < 0)
		nat->spec.hash_seed = (uint32_t)kha_now_us();
	nat->seq = (uint32_t)time(NULL);
	nat->nft = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC);
	nat->rt = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
	if (!nat->nft || !nat->rt || mnl_socket_bind(nat->nft, 0, MNL_SOCKET_AUTOPID) < 0 ||
	    mnl_socket_bind(nat->rt, 0, MNL_SOCKET_AUTOPID) < 0) {
		r = kha_diag_set(d, errno, "netlink: %s", strerror(errno));
		goto fail;
	}
	for (int i = 0; i < 2; i++) {
		int fd = mnl_socket_get_fd(i ? nat->rt : nat->nft);
		kha_ignore(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)));
		kha_ignore(setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one)));
	}
	r = link_create(nat, d);
	if (r < 0)
		goto fail;
	*ret = nat;
	return 0;
fail:
	kha_proxy__nat_free(nat);
	return r;
}

/* 0 when the table exists, -ENOENT when it does not, or another -errno */
static int table_exists(struct kha_proxy_nat *nat)
{
	char buf[512] __attribute__((aligned(8))) = {};
	struct nftnl_table *t = nftnl_table_alloc();
	struct kha_proxy_nat_acks acks;
	struct nlmsghdr *nlh;
	uint32_t seq = ++nat->seq;

	if (!t || nftnl_table_set_str(t, NFTNL_TABLE_NAME, nat->spec.table) < 0) {
		nftnl_table_free(t);
		return -ENOMEM;
	}
	nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETTABLE, NFPROTO_IPV4, NLM_F_ACK, seq);
	nftnl_table_nlmsg_build_payload(nlh, t);
	nftnl_table_free(t);
	return nl_exchange(nat->nft, nlh, nlh->nlmsg_len, seq, seq, 1, &acks);
}

/*
 * Every NAT_VERIFY_INTERVAL_US: a table someone removed (`nft flush ruleset`) is written again,
 * and a write that failed is tried again (publish writes whenever the plan differs from cur).
 */
static void on_verify(struct kha_loop_source *src, void *userdata)
{
	struct kha_proxy *p = userdata;
	struct kha_proxy_nat *nat = p->nat;

	(void)src;
	if (nat->installed && table_exists(nat) == -ENOENT) {
		kha_warn("nftables table removed by someone else, writing it again", "table=%s",
			 KHA_LOGQ(nat->spec.table));
		nat->installed = false;
		nat->rewrites++;
	}
	kha_proxy__nat_publish(p);
}

int kha_proxy__nat_started(struct kha_proxy *p, struct kha_diag *d)
{
	if (p->nat->installed) {
		if (kha_loop_add_timer(p->loop, NAT_VERIFY_INTERVAL_US, NAT_VERIFY_INTERVAL_US,
				       on_verify, p, &p->nat->verify) < 0)
			return kha_diag_set(d, ENOMEM, "out of memory");
		return 0;
	}
	if (!p->nat->commit_failures) /* nothing was written: publish never ran */
		return kha_diag_set(d, EIO, "--mode nat: the nftables table was not written");
	return kha_diag_set(d, EIO, "--mode nat: cannot write the nftables table: %s",
			    p->nat->last_error);
}

void kha_proxy__nat_free(struct kha_proxy_nat *nat)
{
	struct kha_diag d = {};

	if (!nat)
		return;
	kha_loop_source_remove(nat->verify);
	if (nat->installed) {
		if (commit(nat, NULL, true, &d) < 0)
			kha_error("cannot remove the nftables table", "table=%s error=%s",
				  KHA_LOGQ(nat->spec.table), KHA_LOGQ(d.msg));
		else
			kha_info("nftables table removed", "table=%s", KHA_LOGQ(nat->spec.table));
	}
	if (nat->link_ours) {
		link_delete(nat);
	} else if (nat->addr_ours) {
		struct kha_proxy_nat_acks acks;
		int r = addr_request(nat, RTM_DELADDR, &acks);
		if (r < 0 && r != -EADDRNOTAVAIL)
			kha_error("cannot remove the entry address", "interface=%s error=\"%s\"",
				  KHA_LOGQ(nat->ifname), strerror(-r));
	}
	if (nat->nft)
		mnl_socket_close(nat->nft);
	if (nat->rt)
		mnl_socket_close(nat->rt);
	free(nat);
}

static void format_plan(const struct kha_proxy_nat_plan *plan, char *buf, size_t size)
{
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < plan->n && off < size; i++) {
		char a[INET_ADDRSTRLEN];
		inet_ntop(AF_INET, &plan->t[i].addr, a, sizeof(a));
		off += (size_t)snprintf(buf + off, size - off, "%s%s:%u*%u", i ? "," : "", a,
					plan->t[i].port, plan->t[i].weight);
	}
}

void kha_proxy__nat_publish(struct kha_proxy *p)
{
	struct kha_proxy_nat *nat = p->nat;
	struct kha_proxy_nat_cand *c;
	struct kha_proxy_nat_plan *plan;
	struct kha_diag d = {};
	size_t n = 0, i = 0, skipped = 0;
	char q[KHA_DIAG_MAX + 8], desc[1024];

	for (struct backend *b = p->backends; b; b = b->next)
		n += !b->removed;
	c = calloc(n ? n : 1, sizeof(*c));
	plan = malloc(sizeof(*plan));
	if (!c || !plan) {
		kha_error("cannot update the nftables table", "error=%s", "out of memory");
		goto out;
	}
	/* oldest first, as the user-space table */
	for (struct backend *b = p->backends; b; b = b->next) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)&b->addr;
		struct kha_proxy_nat_cand *x;
		if (b->removed)
			continue;
		x = &c[n - 1 - i++];
		if (b->addr.ss_family != AF_INET) {
			x->weight = 0; /* an IPv6 backend cannot be reached from an ip table */
			skipped++;
			continue;
		}
		x->addr = sin->sin_addr;
		x->port = ntohs(sin->sin_port);
		x->weight = b->weight;
		x->state = b->health.state;
	}
	kha_proxy__nat_plan(c, n, p->cfg.balance, plan);
	if (nat->installed && kha_proxy__nat_plan_equal(plan, &nat->cur))
		goto out;
	format_plan(plan, desc, sizeof(desc));
	if (skipped)
		kha_warn("IPv6 backends left out: NAT mode balances an IPv4 entry to IPv4 backends",
			 "backends=%zu", skipped);
	if (commit(nat, plan, false, &d) < 0) {
		nat->commit_failures++;
		snprintf(nat->last_error, sizeof(nat->last_error), "%s", d.msg);
		kha_error("nftables table not updated, the previous one stays",
			  "table=%s backends=%s error=%s", KHA_LOGQ(nat->spec.table),
			  KHA_LOGQ(desc), kha_log_quote(q, sizeof(q), d.msg));
		goto out;
	}
	nat->commits++;
	nat->cur = *plan;
	if (!nat->installed)
		kha_info("nftables table installed", "table=%s entry=%s backends=%s",
			 KHA_LOGQ(nat->spec.table), KHA_LOGQ(p->cfg.listen), KHA_LOGQ(desc));
	else
		kha_info("nftables table updated", "table=%s backends=%s",
			 KHA_LOGQ(nat->spec.table), KHA_LOGQ(desc));
	nat->installed = true;
out:
	free(c);
	free(plan);
}

/* conntrack: deletes the entries of connections to the entry that were sent to one backend */
struct ct_client {
	uint32_t addr; /* the client's side of the original tuple, network order */
	uint16_t port;
};

struct ct_cut {
	struct nfct_handle *del;
	const struct kha_proxy_nat_spec *spec;
	struct in_addr addr;
	uint16_t port; /* network order */
	unsigned n;
	struct ct_client *clients; /* of the deleted entries, for the local sockets */
	size_t nclients, cap;
};

static int ct_cb(enum nf_conntrack_msg_type type, struct nf_conntrack *ct, void *data)
{
	struct ct_cut *c = data;

	(void)type;
	if (nfct_get_attr_u8(ct, ATTR_ORIG_L4PROTO) != IPPROTO_TCP ||
	    nfct_get_attr_u32(ct, ATTR_ORIG_IPV4_DST) != c->spec->entry.s_addr ||
	    nfct_get_attr_u16(ct, ATTR_ORIG_PORT_DST) != htons(c->spec->port) ||
	    nfct_get_attr_u32(ct, ATTR_REPL_IPV4_SRC) != c->addr.s_addr ||
	    nfct_get_attr_u16(ct, ATTR_REPL_PORT_SRC) != c->port)
		return NFCT_CB_CONTINUE;
	if (nfct_query(c->del, NFCT_Q_DESTROY, ct) != 0)
		return NFCT_CB_CONTINUE;
	c->n++;
	if (KHA_GROW(c->clients, c->cap, c->nclients + 1) < 0)
		return NFCT_CB_CONTINUE; /* the entry is gone: the client learns at its next packet */
	c->clients[c->nclients].addr = nfct_get_attr_u32(ct, ATTR_ORIG_IPV4_SRC);
	c->clients[c->nclients].port = nfct_get_attr_u16(ct, ATTR_ORIG_PORT_SRC);
	c->nclients++;
	return NFCT_CB_CONTINUE;
}

/*
 * The clients of this node among them (the output hook's) are sockets here: SOCK_DESTROY aborts
 * each (ECONNABORTED to its reader, a reset to its peer), so an idle watch learns at once
 * instead of at its next packet. A pod's connection is not found here (-ENOENT): its next packet
 * meets the deleted conntrack entry and a reset. Returns the number aborted.
 */
static unsigned abort_local_sockets(struct kha_proxy_nat *nat, const struct ct_cut *c)
{
	struct mnl_socket *nl = mnl_socket_open2(NETLINK_SOCK_DIAG, SOCK_CLOEXEC);
	struct timeval tv = {.tv_sec = NAT_REPLY_TIMEOUT_S};
	unsigned n = 0;
	int one = 1;

	if (!nl || mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		kha_warn("cannot abort local connections", "error=\"%s\"", strerror(errno));
		goto out;
	}
	kha_ignore(setsockopt(mnl_socket_get_fd(nl), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)));
	kha_ignore(
		setsockopt(mnl_socket_get_fd(nl), SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one)));
	for (size_t i = 0; i < c->nclients; i++) {
		char buf[256] __attribute__((aligned(8))) = {};
		struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
		struct inet_diag_req_v2 *req;
		struct kha_proxy_nat_acks acks;
		int r;

		nlh->nlmsg_type = SOCK_DESTROY;
		nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
		nlh->nlmsg_seq = ++nat->seq;
		req = mnl_nlmsg_put_extra_header(nlh, sizeof(*req));
		req->sdiag_family = AF_INET;
		req->sdiag_protocol = IPPROTO_TCP;
		req->idiag_states = ~0U;
		req->id.idiag_sport = c->clients[i].port;
		req->id.idiag_dport = htons(nat->spec.port);
		req->id.idiag_src[0] = c->clients[i].addr;
		req->id.idiag_dst[0] = nat->spec.entry.s_addr;
		req->id.idiag_cookie[0] = req->id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
		r = nl_exchange(nl, nlh, nlh->nlmsg_len, nlh->nlmsg_seq, nlh->nlmsg_seq, 1, &acks);
		if (r == 0)
			n++;
		else if (r != -ENOENT)
			kha_debug("local connection not aborted", "error=\"%s\"", strerror(-r));
	}
out:
	if (nl)
		mnl_socket_close(nl);
	return n;
}

static void cut_conntrack(struct kha_proxy *p, struct backend *b)
{
	const struct sockaddr_in *sin = (const struct sockaddr_in *)&b->addr;
	struct ct_cut c = {.spec = &p->nat->spec, .addr = sin->sin_addr, .port = sin->sin_port};
	struct nfct_handle *dump;
	uint32_t family = AF_INET;
	unsigned aborted;
	int r;

	if (b->addr.ss_family != AF_INET)
		return;
	dump = nfct_open(CONNTRACK, 0);
	c.del = nfct_open(CONNTRACK, 0);
	if (!dump || !c.del) {
		kha_error("cannot cut the backend's connections", "backend=%s error=\"%s\"",
			  KHA_LOGQ(b->name), strerror(errno));
		goto out;
	}
	nfct_callback_register(dump, NFCT_T_ALL, ct_cb, &c);
	r = nfct_query(dump, NFCT_Q_DUMP, &family);
	if (r < 0)
		kha_error("cannot list conntrack entries", "backend=%s error=\"%s\"",
			  KHA_LOGQ(b->name), strerror(errno));
	p->nat->ct_deleted += c.n;
	aborted = c.nclients ? abort_local_sockets(p->nat, &c) : 0;
	p->nat->sockets_aborted += aborted;
	kha_info("backend's connections cut", "backend=%s conntrack_entries=%u local_aborted=%u",
		 KHA_LOGQ(b->name), c.n, aborted);
out:
	free(c.clients);
	if (dump)
		nfct_close(dump);
	if (c.del)
		nfct_close(c.del);
}

void kha_proxy__nat_state_changed(struct kha_proxy *p, struct backend *b)
{
	kha_proxy__nat_publish(p);
	if (b->health.state == KHA_PROXY_DOWN && p->cfg.close_on_dead)
		cut_conntrack(p, b);
}

json_t *kha_proxy__nat_status(struct kha_proxy *p)
{
	const struct kha_proxy_nat *nat = p->nat;
	json_t *arr = json_array(), *o;

	for (size_t i = 0; arr && i < nat->cur.n; i++) {
		char a[INET_ADDRSTRLEN + 8];
		inet_ntop(AF_INET, &nat->cur.t[i].addr, a, INET_ADDRSTRLEN);
		snprintf(a + strlen(a), sizeof(a) - strlen(a), ":%u", nat->cur.t[i].port);
		json_array_append_new(arr, json_pack("{s:s, s:I}", "address", a, "slots",
						     (json_int_t)nat->cur.t[i].weight));
	}
	o = json_pack("{s:s, s:s, s:s, s:b, s:b, s:I, s:I, s:I, s:I, s:I, s:o}", "table",
		      nat->spec.table, "interface", nat->ifname, "address_label", nat->label,
		      "prerouting", nat->spec.prerouting, "installed", nat->installed, "slots",
		      (json_int_t)nat->cur.slots, "commits", (json_int_t)nat->commits,
		      "commit_failures", (json_int_t)nat->commit_failures, "conntrack_deleted",
		      (json_int_t)nat->ct_deleted, "local_connections_aborted",
		      (json_int_t)nat->sockets_aborted, "targets", arr ? arr : json_array());
	return o;
}

static void collect(FILE *out, void *userdata)
{
	struct kha_proxy *p = userdata;
	const struct kha_proxy_nat *nat = p->nat;
	char lbl[KHA_PROXY_ADDR_MAX * 2 + 64], esc[KHA_PROXY_ADDR_MAX * 2];

	if (!nat)
		return;
	kha_metrics_write_header(out, "kha_proxy_nat_table_updates_total",
				 "Writes of the nftables table, by result.", KHA_METRIC_COUNTER);
	kha_metrics_write_sample(out, "kha_proxy_nat_table_updates_total", "result=\"ok\"",
				 (double)nat->commits);
	kha_metrics_write_sample(out, "kha_proxy_nat_table_updates_total", "result=\"failed\"",
				 (double)nat->commit_failures);
	kha_metrics_write_header(out, "kha_proxy_nat_conntrack_deleted_total",
				 "Conntrack entries of dead backends deleted (their clients get a "
				 "reset at their next packet).",
				 KHA_METRIC_COUNTER);
	kha_metrics_write_sample(out, "kha_proxy_nat_conntrack_deleted_total", NULL,
				 (double)nat->ct_deleted);
	kha_metrics_write_header(
		out, "kha_proxy_nat_table_restored_total",
		"Times the table was found removed by someone else and written again.",
		KHA_METRIC_COUNTER);
	kha_metrics_write_sample(out, "kha_proxy_nat_table_restored_total", NULL,
				 (double)nat->rewrites);
	kha_metrics_write_header(out, "kha_proxy_nat_local_connections_aborted_total",
				 "Of those, connections of this node's own clients aborted at once "
				 "(SOCK_DESTROY).",
				 KHA_METRIC_COUNTER);
	kha_metrics_write_sample(out, "kha_proxy_nat_local_connections_aborted_total", NULL,
				 (double)nat->sockets_aborted);
	kha_metrics_write_header(out, "kha_proxy_nat_backend_slots",
				 "Numbers of the DNAT map that lead to the backend (0: not in the "
				 "table).",
				 KHA_METRIC_GAUGE);
	for (struct backend *b = p->backends; b; b = b->next) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)&b->addr;
		uint32_t slots = 0;
		if (b->removed)
			continue;
		for (size_t i = 0; b->addr.ss_family == AF_INET && i < nat->cur.n; i++)
			if (nat->cur.t[i].addr.s_addr == sin->sin_addr.s_addr &&
			    nat->cur.t[i].port == ntohs(sin->sin_port))
				slots = nat->cur.t[i].weight;
		snprintf(lbl, sizeof(lbl), "backend=\"%s\"",
			 kha_metrics_escape(esc, sizeof(esc), b->name));
		kha_metrics_write_sample(out, "kha_proxy_nat_backend_slots", lbl, slots);
	}
}

int kha_proxy__nat_metrics(struct kha_proxy *p)
{
	return kha_metrics_add_collector(p->metrics, collect, p);
}
