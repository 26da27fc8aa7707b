// SPDX-License-Identifier: MIT
/*
 * The BGP speaker of kha bgp: a few peers, each one TCP session (dialled by us or accepted), one
 * optional BFD session per peer, the announced addresses on a local interface, health tracks,
 * metrics and admin endpoints, all on one kha_loop thread (plus the tracks' thread).
 *
 * Invariants:
 *   - A peer's Adj-RIB-Out is all or nothing: every configured prefix of a family the session
 *     negotiated is announced while `announcing` (the tracks pass and no stop has withdrawn
 *     them), with the same attributes, else withdrawn. The addresses are on the interface
 *     exactly while announcing, added before the first announcement and removed after the
 *     last withdrawal.
 *   - Nothing received is kept: a well-formed UPDATE restarts the hold timer and is counted;
 *     a malformed message of any type ends the session with the NOTIFICATION of RFC 4271 6.
 *     Memory per peer is fixed (two 4 KiB messages in, a bounded output buffer).
 *   - Collisions (RFC 4271 6.8): a connection from a peer whose session is Idle is refused, in
 *     Connect/Active it replaces our attempt, in OpenSent/OpenConfirm the higher BGP Identifier
 *     wins (the peer's as learnt from its OPEN, or else its address), in Established the new
 *     connection is closed with a Cease (connection collision resolution).
 *   - BFD (RFC 5881): packets are accepted only with TTL 255; a session that goes from Up to
 *     Down ends the BGP session at once (RFC 5882), with a Cease, BFD Down (RFC 9384), once
 *     it had been Up for a second (a router's fresh session may bounce once as it settles).
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <jansson.h>
#include <libmnl/libmnl.h>

#include "kha/bgp.h"
#include "kha/httpd.h"
#include "kha/log.h"
#include "kha/loop.h"
#include "kha/metrics.h"
#include "kha/rtnl.h"
#include "kha/track.h"
#include "kha/banned.h"

#define TX_MAX	      (256 * 1024) /* a peer that reads nothing for this long is dropped */
#define BFD_SETTLE_US (1000 * KHA_USEC_PER_MSEC)

struct peer {
	struct kha_bgp *b;
	struct kha_bgp_peer_config cfg;
	uint32_t as; /* effective: as= or --peer-as */
	char name[INET6_ADDRSTRLEN];
	struct sockaddr_storage sa;
	socklen_t salen;
	struct kha_bgp_fsm fsm;
	enum kha_bgp_state prev;
	int fd;		 /* the session's connection or our attempt; -1 */
	bool connecting; /* connect() in progress on fd */
	struct kha_loop_source *io, *timer;
	uint8_t rx[2 * KHA_BGP_MAX_LEN];
	size_t rx_len;
	uint8_t *tx;
	size_t tx_len, tx_cap;
	struct kha_bgp_open open; /* the peer's, from OpenConfirm on */
	uint32_t remote_id;	  /* the last one it sent; 0: never heard */
	bool as4, ipv4, ipv6;	  /* negotiated */
	struct kha_bgp_addr local;
	bool announced[2]; /* what this peer was last told, per family (0: IPv4, 1: IPv6) */
	bool gshut_sent;
	uint64_t established_at_us;
	uint64_t flaps, msgs_in, msgs_out, updates_in, updates_out, notif_in, notif_out, malformed,
		refreshes;
	char last_error[160];
	/* BFD */
	struct kha_bfd_fsm bfd;
	int bfd_fd; /* connected to the peer's port 3784, from our own port; -1: no BFD */
	uint16_t bfd_port;
	struct kha_loop_source *bfd_timer;
	uint64_t bfd_up_at_us;
	uint64_t bfd_flaps, bfd_sent, bfd_received;
};

enum drop {
	DROP_TTL,
	DROP_MALFORMED,
	DROP_UNKNOWN,
	DROP__MAX,
};

struct kha_bgp {
	struct kha_bgp_config cfg;
	struct kha_loop *loop;
	struct peer *peers[KHA_BGP_MAX_PEERS];
	size_t npeers;
	int listen_fd[2]; /* IPv4, IPv6; -1 */
	int bfd_rx[2];	  /* UDP 3784, IPv4, IPv6; -1 */
	struct mnl_socket *nl;
	unsigned nl_seq, ifindex;
	struct kha_http_tracks *tracks;
	struct kha_metrics *metrics;
	struct kha_httpd *httpd;
	struct kha_loop_source *stop_timer;
	bool stopping;	 /* SIGTERM seen */
	bool withdrawn;	 /* the stop withdrew everything: never announce again */
	bool gshut;	 /* GRACEFUL_SHUTDOWN is attached to our announcements */
	bool announcing; /* what the peers were last told */
	bool addrs_held; /* the addresses are on the interface */
	uint64_t rejected, announce_changes, reloads, reload_failures;
	uint64_t bfd_dropped[DROP__MAX];
	kha_bgp_reload_fn reload_fn;
	void *reload_userdata;
};

void kha_bgp_config_init(struct kha_bgp_config *c)
{
	memset(c, 0, sizeof(*c));
	c->local_pref = 100;
	c->hold_time_us = 90 * KHA_USEC_PER_SEC;
	c->connect_retry_us = 5 * KHA_USEC_PER_SEC;
	c->listen_port = KHA_BGP_PORT;
	c->bfd_interval_us = 300 * KHA_USEC_PER_MSEC;
	c->bfd_multiplier = 3;
	c->graceful_shutdown_wait_us = 5 * KHA_USEC_PER_SEC;
	snprintf(c->interface, sizeof(c->interface), "lo");
	c->track_interval_us = KHA_USEC_PER_SEC;
	c->track_timeout_us = KHA_USEC_PER_SEC;
	c->track_fall = 3;
	c->track_rise = 2;
	snprintf(c->metrics_addr, sizeof(c->metrics_addr), "127.0.0.1:9445");
}

void kha_bgp_config_release(struct kha_bgp_config *c)
{
	for (size_t i = 0; i < c->ntracks; i++) {
		free(c->track_urls[i]);
		c->track_urls[i] = NULL;
	}
	c->ntracks = 0;
	free(c->track_cacert);
	c->track_cacert = NULL;
	if (c->md5_password)
		explicit_bzero(c->md5_password, strlen(c->md5_password));
	free(c->md5_password);
	c->md5_password = NULL;
}

static void to_sockaddr(const struct kha_bgp_addr *a, uint16_t port, struct sockaddr_storage *ss,
			socklen_t *len)
{
	memset(ss, 0, sizeof(*ss));
	if (a->family == AF_INET) {
		struct sockaddr_in *s = (struct sockaddr_in *)ss;

		s->sin_family = AF_INET;
		s->sin_port = htons(port);
		memcpy(&s->sin_addr, a->a, 4);
		*len = sizeof(*s);
	} else {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)ss;

		s->sin6_family = AF_INET6;
		s->sin6_port = htons(port);
		memcpy(&s->sin6_addr, a->a, 16);
		*len = sizeof(*s);
	}
}

static void from_sockaddr(const struct sockaddr_storage *ss, struct kha_bgp_addr *a)
{
	memset(a, 0, sizeof(*a));
	if (ss->ss_family == AF_INET) {
		a->family = AF_INET;
		memcpy(a->a, &((const struct sockaddr_in *)ss)->sin_addr, 4);
	} else if (ss->ss_family == AF_INET6) {
		const struct in6_addr *in6 = &((const struct sockaddr_in6 *)ss)->sin6_addr;

		if (IN6_IS_ADDR_V4MAPPED(in6)) {
			a->family = AF_INET;
			memcpy(a->a, in6->s6_addr + 12, 4);
		} else {
			a->family = AF_INET6;
			memcpy(a->a, in6->s6_addr, 16);
		}
	}
}

static int fam_index(int family)
{
	return family == AF_INET6 ? 1 : 0;
}

/* ---- socket options: TCP-MD5 (RFC 2385), GTSM (RFC 5082) ---- */

static int set_md5(int fd, const struct kha_bgp *b, const struct peer *p)
{
	struct tcp_md5sig sig = {};
	size_t n;

	if (!b->cfg.md5_password)
		return 0;
	n = strlen(b->cfg.md5_password);
	if (n > TCP_MD5SIG_MAXKEYLEN)
		return -EINVAL;
	memcpy(&sig.tcpm_addr, &p->sa, p->salen);
	sig.tcpm_keylen = (uint16_t)n;
	memcpy(sig.tcpm_key, b->cfg.md5_password, n);
	if (setsockopt(fd, IPPROTO_TCP, TCP_MD5SIG, &sig, sizeof(sig)) < 0) {
		int e = -errno;

		explicit_bzero(&sig, sizeof(sig));
		return e;
	}
	explicit_bzero(&sig, sizeof(sig));
	return 0;
}

/* TTL 255 out; with GTSM only 255 accepted in (a single hop: RFC 5082 3). */
static int set_ttl(int fd, int family, bool min)
{
	int ttl = 255;

	if (family == AF_INET) {
		if (setsockopt(fd, IPPROTO_IP, IP_TTL, &ttl, sizeof(ttl)) < 0)
			return -errno;
		if (min && setsockopt(fd, IPPROTO_IP, IP_MINTTL, &ttl, sizeof(ttl)) < 0)
			return -errno;
	} else {
		if (setsockopt(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, &ttl, sizeof(ttl)) < 0)
			return -errno;
		if (min && setsockopt(fd, IPPROTO_IPV6, IPV6_MINHOPCOUNT, &ttl, sizeof(ttl)) < 0)
			return -errno;
	}
	return 0;
}

/* ---- the addresses on the interface (rtnetlink) ---- */

static int addr_netlink(struct kha_bgp *b, const struct kha_bgp_prefix *pf, bool add)
{
	char buf[KHA_RTNL_ADDR_MSG_SIZE] __attribute__((aligned(8)));
	char label[IFNAMSIZ] = "";
	struct kha_rtnl_addr a = {.family = pf->addr.family,
				  .addr = pf->addr.a,
				  .prefixlen = pf->len,
				  .ifindex = b->ifindex,
				  .nodad = true}; /* no DAD: several hosts hold it on purpose */

	if (strlen(b->cfg.interface) + 4 < sizeof(label)) {
		/* a label shows whose address it is (ip addr) */
		snprintf(label, sizeof(label), "%s:kha", b->cfg.interface);
		a.label = label;
	}
	return kha_rtnl_request(b->nl,
				kha_rtnl_addr_msg(buf, add ? RTM_NEWADDR : RTM_DELADDR,
						  add ? NLM_F_CREATE | NLM_F_REPLACE : 0, &a),
				&b->nl_seq);
}

static bool host_prefix(const struct kha_bgp_prefix *p)
{
	return p->len == (p->addr.family == AF_INET ? 32 : 128);
}

static void addrs_set(struct kha_bgp *b, bool add)
{
	char a[INET6_ADDRSTRLEN];

	for (size_t i = 0; i < b->cfg.nannounce; i++) {
		const struct kha_bgp_prefix *pf = &b->cfg.announce[i];
		int r;

		if (!host_prefix(pf))
			continue;
		r = addr_netlink(b, pf, add);
		if (!add && (r == -EADDRNOTAVAIL || r == -ENOENT || r == -ENODEV))
			r = 0;
		if (r < 0)
			kha_error(add ? "cannot add the service address"
				      : "cannot remove the service address",
				  "address=%s/%u interface=%s error=\"%s\"",
				  KHA_LOGQ(kha_bgp_addr_str(&pf->addr, a, sizeof(a))), pf->len,
				  KHA_LOGQ(b->cfg.interface), strerror(-r));
	}
	b->addrs_held = add;
}

/* ---- output ---- */

static void peer_close(struct peer *p);
static void perform(struct peer *p, unsigned act, const char *why);

/* Writes what is queued; -errno when the connection failed. */
static int flush(struct peer *p)
{
	while (p->tx_len) {
		ssize_t n = send(p->fd, p->tx, p->tx_len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			return -errno;
		}
		memmove(p->tx, p->tx + n, p->tx_len - (size_t)n);
		p->tx_len -= (size_t)n;
	}
	if (p->io)
		kha_ignore(kha_loop_io_set_events(p->io, EPOLLIN | (p->tx_len ? EPOLLOUT : 0)));
	return 0;
}

static int queue(struct peer *p, const uint8_t *msg, size_t len)
{
	if (p->fd < 0)
		return -ENOTCONN;
	if (p->tx_len + len > TX_MAX)
		return -ENOBUFS;
	if (KHA_GROW(p->tx, p->tx_cap, p->tx_len + len) < 0)
		return -ENOMEM;
	memcpy(p->tx + p->tx_len, msg, len);
	p->tx_len += len;
	p->msgs_out++;
	return 0;
}

/* Queues a message and writes; a connection that fails is handed to the machine. */
static void send_msg(struct peer *p, const uint8_t *msg, int len)
{
	int r = len < 0 ? len : queue(p, msg, (size_t)len);

	if (r == 0)
		r = flush(p);
	if (r < 0 && p->fd >= 0) {
		snprintf(p->last_error, sizeof(p->last_error), "send: %s", strerror(-r));
		kha_warn("cannot send to peer", "peer=%s error=\"%s\"", KHA_LOGQ(p->name),
			 strerror(-r));
		perform(p, kha_bgp_fsm_tcp_fail(&p->fsm, kha_now_us()), "send failed");
	}
}

static void send_open(struct peer *p)
{
	const struct kha_bgp *b = p->b;
	struct kha_bgp_open o = {.as = b->cfg.local_as,
				 .hold_time = (uint16_t)(b->cfg.hold_time_us / KHA_USEC_PER_SEC),
				 .cap_as4 = true,
				 .cap_ipv4 = true,
				 .cap_ipv6 = true,
				 .cap_route_refresh = true};
	uint8_t buf[128];

	memcpy(&o.id, b->cfg.router_id.a, 4);
	send_msg(p, buf, kha_bgp_encode_open(&o, buf, sizeof(buf)));
}

static bool family_on(const struct peer *p, int family)
{
	return family == AF_INET ? p->ipv4 : p->ipv6;
}

static const struct kha_bgp_addr *next_hop(const struct peer *p, int family)
{
	const struct kha_bgp_addr *nh =
		family == AF_INET ? &p->b->cfg.next_hop4 : &p->b->cfg.next_hop6;

	if (nh->family)
		return nh;
	return p->local.family == family ? &p->local : NULL;
}

/* Tells the peer what it must know now: every prefix announced (again) or withdrawn. */
static void send_rib(struct peer *p, bool force)
{
	const struct kha_bgp *b = p->b;
	static const int families[] = {AF_INET, AF_INET6};

	if (p->fsm.state != KHA_BGP_ESTABLISHED)
		return;
	for (size_t f = 0; f < 2; f++) {
		int family = families[f];
		struct kha_bgp_prefix pf[KHA_BGP_MAX_ANNOUNCE];
		struct kha_bgp_attrs at = {.local_as = b->cfg.local_as,
					   .ebgp = p->as != b->cfg.local_as,
					   .as4 = p->as4,
					   .has_med = b->cfg.has_med,
					   .med = b->cfg.med,
					   .local_pref = b->cfg.local_pref};
		const struct kha_bgp_addr *nh;
		uint8_t buf[KHA_BGP_MAX_LEN];
		size_t n = 0;
		char a[INET6_ADDRSTRLEN];

		for (size_t i = 0; i < b->cfg.nannounce; i++)
			if (b->cfg.announce[i].addr.family == family)
				pf[n++] = b->cfg.announce[i];
		if (!n || !family_on(p, family))
			continue;
		if (!b->announcing) {
			if (p->announced[f]) {
				send_msg(p, buf, kha_bgp_encode_withdraw(pf, n, buf, sizeof(buf)));
				p->announced[f] = false;
				p->updates_out++;
				kha_info("withdrawn", "peer=%s family=%s prefixes=%zu",
					 KHA_LOGQ(p->name), family == AF_INET ? "ipv4" : "ipv6", n);
			}
			continue;
		}
		if (p->announced[f] && !force && p->gshut_sent == b->gshut)
			continue;
		nh = next_hop(p, family);
		if (!nh) {
			kha_warn("no next hop for this family: not announced",
				 "peer=%s family=%s hint=\"set --next-hop\"", KHA_LOGQ(p->name),
				 family == AF_INET ? "ipv4" : "ipv6");
			continue;
		}
		at.next_hop = *nh;
		memcpy(at.communities, b->cfg.communities, sizeof(at.communities));
		at.ncommunities = b->cfg.ncommunities;
		if (b->gshut && at.ncommunities < KHA_BGP_MAX_COMMUNITIES)
			at.communities[at.ncommunities++] = KHA_BGP_COMMUNITY_GRACEFUL_SHUTDOWN;
		send_msg(p, buf, kha_bgp_encode_announce(pf, n, &at, buf, sizeof(buf)));
		if (p->fd < 0)
			return;
		p->announced[f] = true;
		p->updates_out++;
		kha_info("announced",
			 "peer=%s family=%s prefixes=%zu next_hop=%s graceful_shutdown=%s",
			 KHA_LOGQ(p->name), family == AF_INET ? "ipv4" : "ipv6", n,
			 KHA_LOGQ(kha_bgp_addr_str(nh, a, sizeof(a))), b->gshut ? "true" : "false");
	}
	p->gshut_sent = b->gshut;
}

/* The announcement changed (tracks, stop, graceful shutdown, reload): tell every peer. */
static void sync_announcements(struct kha_bgp *b, bool force)
{
	bool want = !b->withdrawn && kha_http_tracks_all_up(b->tracks);

	if (want != b->announcing) {
		b->announce_changes++;
		kha_log(want ? KHA_LOG_INFO : KHA_LOG_WARN,
			want ? "announcing the service address" : "withdrawing the service address",
			"reason=%s",
			KHA_LOGQ(want		? "health tracks pass"
				 : b->withdrawn ? "stopping"
						: "a health track fails"));
	}
	if (want && !b->addrs_held)
		addrs_set(b, true);
	b->announcing = want;
	for (size_t i = 0; i < b->npeers; i++)
		send_rib(b->peers[i], force);
	if (!want && b->addrs_held)
		addrs_set(b, false);
}

/* ---- the session ---- */

static void rearm(struct peer *p)
{
	uint64_t next = kha_bgp_fsm_next_us(&p->fsm), now = kha_now_us();

	if (!next)
		kha_loop_timer_stop(p->timer);
	else
		kha_loop_timer_set(p->timer, next > now ? next - now : 0, 0);
}

static void peer_close(struct peer *p)
{
	kha_loop_source_remove(p->io);
	p->io = NULL;
	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
	p->connecting = false;
	p->rx_len = 0;
	p->tx_len = 0;
	p->announced[0] = p->announced[1] = false;
	p->gshut_sent = false;
}

static void on_io(struct kha_loop_source *src, int fd, uint32_t events, void *userdata);

static int watch(struct peer *p, uint32_t events)
{
	return kha_loop_add_io(p->b->loop, p->fd, events, 0, on_io, p, &p->io);
}

static void start_connect(struct peer *p)
{
	struct kha_bgp *b = p->b;
	int fd, r;

	peer_close(p);
	fd = socket(p->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
	if (fd < 0) {
		r = -errno;
		goto fail;
	}
	p->fd = fd;
	r = set_md5(fd, b, p);
	if (r == 0)
		r = set_ttl(fd, p->sa.ss_family, b->cfg.gtsm);
	if (r < 0)
		goto fail;
	if (connect(fd, (struct sockaddr *)&p->sa, p->salen) < 0 && errno != EINPROGRESS) {
		r = -errno;
		goto fail;
	}
	p->connecting = true;
	r = watch(p, EPOLLOUT);
	if (r < 0)
		goto fail;
	kha_debug("connecting", "peer=%s port=%u", KHA_LOGQ(p->name),
		  p->cfg.port ? p->cfg.port : KHA_BGP_PORT);
	return;
fail:
	snprintf(p->last_error, sizeof(p->last_error), "connect: %s", strerror(-r));
	kha_debug("cannot connect", "peer=%s error=\"%s\"", KHA_LOGQ(p->name), strerror(-r));
	perform(p, kha_bgp_fsm_tcp_fail(&p->fsm, kha_now_us()), "connect failed");
}

static void learn_local(struct peer *p)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(p->fd, (struct sockaddr *)&ss, &len) == 0)
		from_sockaddr(&ss, &p->local);
}

static void perform(struct peer *p, unsigned act, const char *why)
{
	uint8_t buf[64];

	if (act & KHA_BGP_ACT_SEND_NOTIFY) {
		const struct kha_bgp_notify *n = &p->fsm.notify_out;
		int len = kha_bgp_encode_notification(n, buf, sizeof(buf));

		if (len > 0 && p->fd >= 0 && queue(p, buf, (size_t)len) == 0) {
			kha_ignore(flush(p));
			p->notif_out++;
		}
		snprintf(p->last_error, sizeof(p->last_error), "sent: %s, %s",
			 kha_bgp_error_name(n->code), kha_bgp_suberror_name(n->code, n->subcode));
		kha_log(n->code == KHA_BGP_ERR_CEASE ? KHA_LOG_INFO : KHA_LOG_WARN,
			"notification sent", "peer=%s code=%u subcode=%u error=\"%s, %s\"",
			KHA_LOGQ(p->name), n->code, n->subcode, kha_bgp_error_name(n->code),
			kha_bgp_suberror_name(n->code, n->subcode));
	}
	if (act & KHA_BGP_ACT_CLOSE)
		peer_close(p);
	if (act & KHA_BGP_ACT_CONNECT)
		start_connect(p);
	if (act & KHA_BGP_ACT_SEND_OPEN) {
		learn_local(p);
		send_open(p);
	}
	if ((act & KHA_BGP_ACT_SEND_KEEPALIVE) && p->fd >= 0)
		send_msg(p, buf, kha_bgp_encode_keepalive(buf, sizeof(buf)));
	if (act & KHA_BGP_ACT_STATE) {
		enum kha_bgp_state from = p->prev, to = p->fsm.state;

		p->prev = to;
		if (to == KHA_BGP_ESTABLISHED) {
			p->established_at_us = kha_now_us();
			kha_info("session established",
				 "peer=%s as=%u hold_time=%llus families=%s%s%s four_octet_as=%s",
				 KHA_LOGQ(p->name), p->as,
				 (unsigned long long)(p->fsm.hold_us / 1000000),
				 p->ipv4 ? "ipv4" : "", p->ipv4 && p->ipv6 ? "," : "",
				 p->ipv6 ? "ipv6" : "", p->as4 ? "true" : "false");
		} else if (from == KHA_BGP_ESTABLISHED) {
			p->flaps++;
			kha_warn("session down", "peer=%s to=%s reason=\"%s\"", KHA_LOGQ(p->name),
				 kha_bgp_state_name(to), why);
		} else {
			kha_debug("session state", "peer=%s from=%s to=%s reason=\"%s\"",
				  KHA_LOGQ(p->name), kha_bgp_state_name(from),
				  kha_bgp_state_name(to), why);
		}
	}
	if ((act & KHA_BGP_ACT_ANNOUNCE) && p->fd >= 0)
		send_rib(p, true);
	rearm(p);
}

static void on_timer(struct kha_loop_source *src, void *userdata)
{
	struct peer *p = userdata;

	(void)src;
	perform(p, kha_bgp_fsm_tick(&p->fsm, kha_now_us()), "timer");
}

static void session_error(struct peer *p, const struct kha_bgp_notify *e, const char *what)
{
	p->malformed++;
	kha_warn("malformed message from peer",
		 "peer=%s message=%s code=%u subcode=%u "
		 "error=\"%s, %s\"",
		 KHA_LOGQ(p->name), KHA_LOGQ(what), e->code, e->subcode,
		 kha_bgp_error_name(e->code), kha_bgp_suberror_name(e->code, e->subcode));
	perform(p, kha_bgp_fsm_error(&p->fsm, kha_now_us(), e), "malformed message");
}

static void on_open(struct peer *p, const struct kha_bgp_open *o)
{
	struct kha_bgp *b = p->b;
	struct kha_bgp_open_rules rules = {.peer_as = p->as, .ibgp = p->as == b->cfg.local_as};
	struct kha_bgp_notify e;

	memcpy(&rules.local_id, b->cfg.router_id.a, 4);
	if (kha_bgp_open_check(o, &rules, &e) < 0) {
		session_error(p, &e, "OPEN");
		return;
	}
	p->open = *o;
	p->remote_id = o->id;
	p->as4 = o->cap_as4;
	/* RFC 4760 1: without any multiprotocol capability, IPv4 unicast is implied */
	p->ipv4 = !o->cap_mp || o->cap_ipv4;
	p->ipv6 = o->cap_ipv6;
	perform(p, kha_bgp_fsm_open(&p->fsm, kha_now_us(), o->hold_time), "OPEN received");
}

/* Handles one framed message; false when the session ended. */
static bool on_message(struct peer *p, const uint8_t *buf, size_t len)
{
	static const char *const names[] = {"?",	 "OPEN",	 "UPDATE", "NOTIFICATION",
					    "KEEPALIVE", "ROUTE-REFRESH"};
	struct kha_bgp_notify e;
	struct kha_bgp_msg m;
	uint64_t now = kha_now_us();
	int fd = p->fd;

	p->msgs_in++;
	if (kha_bgp_decode(buf, len, p->as4, &m, &e) < 0) {
		session_error(p, &e, names[buf[18] <= 5 ? buf[18] : 0]);
		return false;
	}
	switch (m.type) {
	case KHA_BGP_OPEN:
		if (p->fsm.state == KHA_BGP_OPENSENT)
			on_open(p, &m.open);
		else
			perform(p, kha_bgp_fsm_open(&p->fsm, now, 0), "unexpected OPEN");
		break;
	case KHA_BGP_KEEPALIVE:
		perform(p, kha_bgp_fsm_keepalive(&p->fsm, now), "KEEPALIVE received");
		break;
	case KHA_BGP_UPDATE:
		p->updates_in++; /* checked, and dropped: kha takes no routes */
		perform(p, kha_bgp_fsm_update(&p->fsm, now), "UPDATE received");
		break;
	case KHA_BGP_ROUTE_REFRESH:
		p->refreshes++;
		perform(p, kha_bgp_fsm_update(&p->fsm, now), "ROUTE-REFRESH received");
		/* RFC 2918 3: send the Adj-RIB-Out again (for an AFI/SAFI we do not speak:
		 * ignore, 4 says) */
		if (p->fsm.state == KHA_BGP_ESTABLISHED && m.refresh.safi == KHA_BGP_SAFI_UNICAST)
			send_rib(p, true);
		break;
	case KHA_BGP_NOTIFICATION:
		p->notif_in++;
		snprintf(p->last_error, sizeof(p->last_error), "received: %s, %s",
			 kha_bgp_error_name(m.notification.code),
			 kha_bgp_suberror_name(m.notification.code, m.notification.subcode));
		kha_log(m.notification.code == KHA_BGP_ERR_CEASE ? KHA_LOG_INFO : KHA_LOG_WARN,
			"notification received", "peer=%s code=%u subcode=%u error=\"%s, %s\"",
			KHA_LOGQ(p->name), m.notification.code, m.notification.subcode,
			kha_bgp_error_name(m.notification.code),
			kha_bgp_suberror_name(m.notification.code, m.notification.subcode));
		perform(p, kha_bgp_fsm_notification(&p->fsm, now), "NOTIFICATION received");
		break;
	}
	return p->fd == fd && p->fd >= 0;
}

static void on_readable(struct peer *p)
{
	for (;;) {
		ssize_t n = recv(p->fd, p->rx + p->rx_len, sizeof(p->rx) - p->rx_len, MSG_DONTWAIT);
		size_t off = 0;

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			snprintf(p->last_error, sizeof(p->last_error), "%s",
				 n == 0 ? "connection closed by the peer" : strerror(errno));
			perform(p, kha_bgp_fsm_tcp_fail(&p->fsm, kha_now_us()),
				n == 0 ? "connection closed by the peer" : "receive failed");
			return;
		}
		p->rx_len += (size_t)n;
		for (;;) {
			struct kha_bgp_notify e;
			int len = kha_bgp_frame(p->rx + off, p->rx_len - off, &e);

			if (len < 0) {
				session_error(p, &e, "header");
				return;
			}
			if (len == 0)
				break;
			if (!on_message(p, p->rx + off, (size_t)len))
				return;
			off += (size_t)len;
		}
		memmove(p->rx, p->rx + off, p->rx_len - off);
		p->rx_len -= off;
	}
}

static void on_io(struct kha_loop_source *src, int fd, uint32_t events, void *userdata)
{
	struct peer *p = userdata;

	(void)src;
	(void)fd;
	if (p->connecting) {
		int err = 0;
		socklen_t len = sizeof(err);

		if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		p->connecting = false;
		if (err) {
			snprintf(p->last_error, sizeof(p->last_error), "connect: %s",
				 strerror(err));
			kha_debug("cannot connect", "peer=%s error=\"%s\"", KHA_LOGQ(p->name),
				  strerror(err));
			perform(p, kha_bgp_fsm_tcp_fail(&p->fsm, kha_now_us()), "connect failed");
			return;
		}
		kha_ignore(kha_loop_io_set_events(p->io, EPOLLIN));
		perform(p, kha_bgp_fsm_tcp_up(&p->fsm, kha_now_us()), "connected");
		return;
	}
	if (events & EPOLLOUT) {
		int r = flush(p);

		if (r < 0) {
			perform(p, kha_bgp_fsm_tcp_fail(&p->fsm, kha_now_us()), "send failed");
			return;
		}
	}
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
		on_readable(p);
}

/* ---- passive side ---- */

static struct peer *find_peer(struct kha_bgp *b, const struct kha_bgp_addr *a)
{
	for (size_t i = 0; i < b->npeers; i++)
		if (kha_bgp_addr_equal(&b->peers[i]->cfg.addr, a))
			return b->peers[i];
	return NULL;
}

/* Closes a connection we do not take, with a Cease of that subcode. */
static void refuse(int fd, uint8_t subcode)
{
	struct kha_bgp_notify n = {.code = KHA_BGP_ERR_CEASE, .subcode = subcode};
	uint8_t buf[32];
	int len = kha_bgp_encode_notification(&n, buf, sizeof(buf));

	if (len > 0)
		kha_ignore(send(fd, buf, (size_t)len, MSG_NOSIGNAL | MSG_DONTWAIT));
	close(fd);
}

static void on_accept(struct kha_loop_source *src, int lfd, uint32_t events, void *userdata)
{
	struct kha_bgp *b = userdata;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	struct kha_bgp_addr from;
	struct peer *p;
	char a[INET6_ADDRSTRLEN];
	uint32_t local_id;
	int fd;

	(void)src;
	(void)events;
	fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return;
	from_sockaddr(&ss, &from);
	p = find_peer(b, &from);
	if (!p || b->stopping) {
		if (b->rejected++ % 100 == 0)
			kha_warn("connection refused", "from=%s reason=\"%s\" refused=%llu",
				 KHA_LOGQ(kha_bgp_addr_str(&from, a, sizeof(a))),
				 p ? "stopping" : "not a configured peer",
				 (unsigned long long)b->rejected);
		refuse(fd, KHA_BGP_CEASE_CONNECTION_REJECTED);
		return;
	}
	memcpy(&local_id, b->cfg.router_id.a, 4);
	switch (p->fsm.state) {
	case KHA_BGP_IDLE:
		refuse(fd, KHA_BGP_CEASE_CONNECTION_REJECTED);
		return;
	case KHA_BGP_CONNECT:
	case KHA_BGP_ACTIVE:
		peer_close(p);
		p->fd = fd;
		if (watch(p, EPOLLIN) < 0) {
			peer_close(p);
			return;
		}
		perform(p, kha_bgp_fsm_tcp_up(&p->fsm, kha_now_us()), "connection accepted");
		return;
	case KHA_BGP_OPENSENT:
	case KHA_BGP_OPENCONFIRM: {
		/* RFC 4271 6.8: the connection opened by the higher identifier stays */
		uint32_t remote = p->remote_id;

		if (!remote && from.family == AF_INET)
			memcpy(&remote, from.a, 4);
		if (ntohl(remote) > ntohl(local_id)) {
			struct kha_bgp_notify n = {.code = KHA_BGP_ERR_CEASE,
						   .subcode = KHA_BGP_CEASE_COLLISION};

			if (p->fd >= 0) {
				uint8_t buf[32];
				int l = kha_bgp_encode_notification(&n, buf, sizeof(buf));

				if (l > 0)
					kha_ignore(send(p->fd, buf, (size_t)l,
							MSG_NOSIGNAL | MSG_DONTWAIT));
			}
			peer_close(p);
			p->fd = fd;
			if (watch(p, EPOLLIN) < 0) {
				peer_close(p);
				perform(p, kha_bgp_fsm_tcp_fail(&p->fsm, kha_now_us()), "epoll");
				return;
			}
			kha_debug("connection collision: the peer's connection stays", "peer=%s",
				  KHA_LOGQ(p->name));
			perform(p, kha_bgp_fsm_tcp_replace(&p->fsm, kha_now_us()),
				"connection collision");
			return;
		}
		refuse(fd, KHA_BGP_CEASE_COLLISION);
		return;
	}
	default:
		refuse(fd, KHA_BGP_CEASE_COLLISION);
	}
}

/* ---- BFD ---- */

static void bfd_rearm(struct peer *p)
{
	uint64_t next = kha_bfd_fsm_next_us(&p->bfd), now = kha_now_us();

	if (!next)
		kha_loop_timer_stop(p->bfd_timer);
	else
		kha_loop_timer_set(p->bfd_timer, next > now ? next - now : 0, 0);
}

static void bfd_perform(struct peer *p, unsigned act, enum kha_bfd_state before)
{
	uint64_t now = kha_now_us();

	if (act & KHA_BFD_ACT_SEND) {
		struct kha_bfd_packet pk;
		uint8_t buf[KHA_BFD_LEN];

		kha_bfd_fsm_packet(&p->bfd, now, &pk);
		if (kha_bfd_encode(&pk, buf, sizeof(buf)) == KHA_BFD_LEN &&
		    send(p->bfd_fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_NOSIGNAL) ==
			    (ssize_t)sizeof(buf))
			p->bfd_sent++;
	}
	if (act & KHA_BFD_ACT_STATE) {
		enum kha_bfd_state to = p->bfd.state;

		kha_log(to == KHA_BFD_UP || before != KHA_BFD_UP ? KHA_LOG_INFO : KHA_LOG_WARN,
			"BFD session state", "peer=%s from=%s to=%s diag=%u detect_ms=%.1f",
			KHA_LOGQ(p->name), kha_bfd_state_name(before), kha_bfd_state_name(to),
			p->bfd.diag, (double)kha_bfd_detect_us(&p->bfd) / 1e3);
		if (to == KHA_BFD_UP)
			p->bfd_up_at_us = now;
		if (before == KHA_BFD_UP && to != KHA_BFD_UP) {
			p->bfd_flaps++;
			/* a router's fresh session may bounce once as it settles (FRR 8.4 does,
			 * as its BGP session comes up): BFD governs once it held for a while */
			if (now - p->bfd_up_at_us >= BFD_SETTLE_US)
				perform(p, kha_bgp_fsm_bfd_down(&p->fsm, now), "BFD down");
			else
				kha_info("BFD down right after up: the BGP session stays",
					 "peer=%s up_ms=%.1f", KHA_LOGQ(p->name),
					 (double)(now - p->bfd_up_at_us) / 1e3);
		}
	}
	bfd_rearm(p);
}

static void on_bfd_timer(struct kha_loop_source *src, void *userdata)
{
	struct peer *p = userdata;
	enum kha_bfd_state before = p->bfd.state;

	(void)src;
	bfd_perform(p, kha_bfd_fsm_tick(&p->bfd, kha_now_us()), before);
}

static struct peer *find_bfd(struct kha_bgp *b, uint32_t your_disc, const struct kha_bgp_addr *a)
{
	for (size_t i = 0; i < b->npeers; i++) {
		struct peer *p = b->peers[i];

		if (p->bfd_fd < 0)
			continue;
		if (your_disc ? p->bfd.local_disc == your_disc
			      : kha_bgp_addr_equal(&p->cfg.addr, a))
			return p;
	}
	return NULL;
}

static void on_bfd_rx(struct kha_loop_source *src, int fd, uint32_t events, void *userdata)
{
	struct kha_bgp *b = userdata;

	(void)src;
	(void)events;
	for (int k = 0; k < 64; k++) {
		uint8_t buf[128];
		union {
			struct cmsghdr h;
			char buf[CMSG_SPACE(sizeof(int)) * 2];
		} control;
		struct sockaddr_storage ss;
		struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf)};
		struct msghdr mh = {.msg_name = &ss,
				    .msg_namelen = sizeof(ss),
				    .msg_iov = &iov,
				    .msg_iovlen = 1,
				    .msg_control = control.buf,
				    .msg_controllen = sizeof(control.buf)};
		struct kha_bfd_packet pk;
		struct kha_bgp_addr from;
		struct peer *p;
		int ttl = -1;
		ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT);

		if (n < 0)
			return;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
			if ((c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TTL) ||
			    (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_HOPLIMIT))
				memcpy(&ttl, CMSG_DATA(c), sizeof(ttl));
		/* RFC 5881 5: a single hop means TTL 255, else it came from afar */
		if (ttl != KHA_BFD_TTL) {
			b->bfd_dropped[DROP_TTL]++;
			continue;
		}
		if (kha_bfd_decode(buf, (size_t)n, &pk) < 0) {
			b->bfd_dropped[DROP_MALFORMED]++;
			continue;
		}
		from_sockaddr(&ss, &from);
		p = find_bfd(b, pk.your_disc, &from);
		if (!p || !kha_bgp_addr_equal(&p->cfg.addr, &from)) {
			b->bfd_dropped[DROP_UNKNOWN]++;
			continue;
		}
		p->bfd_received++;
		{
			enum kha_bfd_state before = p->bfd.state;
			unsigned act = kha_bfd_fsm_rx(&p->bfd, kha_now_us(), &pk);

			if (act & KHA_BFD_ACT_STATE)
				kha_debug("BFD packet",
					  "peer=%s state=%s diag=%u my_disc=%u "
					  "your_disc=%u poll=%d final=%d",
					  KHA_LOGQ(p->name), kha_bfd_state_name(pk.state), pk.diag,
					  pk.my_disc, pk.your_disc, pk.poll, pk.final);
			bfd_perform(p, act, before);
		}
	}
}

static int bfd_open_rx(struct kha_bgp *b, int family, struct kha_diag *d)
{
	struct kha_bgp_addr any = {.family = family};
	struct sockaddr_storage ss;
	socklen_t len;
	int one = 1, fd;

	fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return family == AF_INET6
			       ? 0
			       : kha_diag_set(d, errno, "BFD socket: %s", strerror(errno));
	b->bfd_rx[fam_index(family)] = fd;
	to_sockaddr(&any, KHA_BFD_PORT, &ss, &len);
	if (family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
		return kha_diag_set(d, errno, "BFD socket: %s", strerror(errno));
	if ((family == AF_INET
		     ? setsockopt(fd, IPPROTO_IP, IP_RECVTTL, &one, sizeof(one))
		     : setsockopt(fd, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, &one, sizeof(one))) < 0)
		return kha_diag_set(d, errno, "BFD socket: %s", strerror(errno));
	if (bind(fd, (struct sockaddr *)&ss, len) < 0)
		return kha_diag_set(d, errno, "BFD: cannot listen on UDP port %d: %s%s",
				    KHA_BFD_PORT, strerror(errno),
				    errno == EADDRINUSE ? " (another BFD daemon runs here?)" : "");
	return kha_loop_add_io(b->loop, fd, EPOLLIN, 0, on_bfd_rx, b, NULL);
}

/* A session's own socket: from a port of 49152..65535 (RFC 5881 4), TTL 255, connected. */
static int bfd_open_tx(struct kha_bgp *b, struct peer *p, struct kha_diag *d)
{
	struct sockaddr_storage dst, src;
	struct kha_bgp_addr any = {.family = p->cfg.addr.family};
	socklen_t dlen, slen;
	uint32_t disc = 0;
	int fd;

	fd = socket(p->cfg.addr.family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return kha_diag_set(d, errno, "BFD socket: %s", strerror(errno));
	p->bfd_fd = fd;
	if (set_ttl(fd, p->cfg.addr.family, false) < 0)
		return kha_diag_set(d, errno, "BFD socket: %s", strerror(errno));
	for (unsigned port = KHA_BFD_SRC_MIN; port <= 65535; port++) {
		to_sockaddr(&any, (uint16_t)port, &src, &slen);
		if (bind(fd, (struct sockaddr *)&src, slen) == 0) {
			p->bfd_port = (uint16_t)port;
			break;
		}
		if (errno != EADDRINUSE)
			return kha_diag_set(d, errno, "BFD socket: %s", strerror(errno));
	}
	if (!p->bfd_port)
		return kha_diag_set(d, EADDRINUSE, "BFD: no free source port");
	to_sockaddr(&p->cfg.addr, KHA_BFD_PORT, &dst, &dlen);
	if (connect(fd, (struct sockaddr *)&dst, dlen) < 0)
		return kha_diag_set(d, errno, "BFD socket to %s: %s", p->name, strerror(errno));
	while (!disc)
		if (getrandom(&disc, sizeof(disc), 0) != sizeof(disc))
			disc = (uint32_t)kha_now_us() ^ (uint32_t)(uintptr_t)p;
	kha_bfd_fsm_init(&p->bfd, disc, b->cfg.bfd_interval_us, b->cfg.bfd_interval_us,
			 (uint8_t)b->cfg.bfd_multiplier, kha_now_us());
	return kha_loop_add_timer(b->loop, 0, 0, on_bfd_timer, p, &p->bfd_timer);
}

/* ---- peers ---- */

static void peer_free(struct peer *p)
{
	if (!p)
		return;
	peer_close(p);
	kha_loop_source_remove(p->timer);
	kha_loop_source_remove(p->bfd_timer);
	if (p->bfd_fd >= 0)
		close(p->bfd_fd);
	free(p->tx);
	free(p);
}

static struct kha_bgp_fsm_config fsm_config(const struct kha_bgp_config *c)
{
	return (struct kha_bgp_fsm_config){
		.hold_time_s = (uint16_t)(c->hold_time_us / KHA_USEC_PER_SEC),
		.keepalive_us = c->keepalive_us,
		.connect_retry_us = c->connect_retry_us,
		.connect_retry_max_us = 60 * KHA_USEC_PER_SEC,
		.idle_hold_us = KHA_USEC_PER_SEC,
		.idle_hold_max_us = 60 * KHA_USEC_PER_SEC,
		.passive = c->passive,
	};
}

static int peer_new(struct kha_bgp *b, const struct kha_bgp_peer_config *pc, struct kha_diag *d,
		    struct peer **ret)
{
	struct peer *p = calloc(1, sizeof(*p));
	struct kha_bgp_fsm_config fc = fsm_config(&b->cfg);
	int r;

	if (!p)
		return kha_diag_set(d, ENOMEM, "out of memory");
	p->b = b;
	p->cfg = *pc;
	p->fd = -1;
	p->bfd_fd = -1;
	p->as = pc->as ? pc->as : b->cfg.peer_as;
	kha_bgp_addr_str(&pc->addr, p->name, sizeof(p->name));
	to_sockaddr(&pc->addr, pc->port ? pc->port : KHA_BGP_PORT, &p->sa, &p->salen);
	kha_bgp_fsm_init(&p->fsm, &fc);
	p->prev = p->fsm.state;
	r = kha_loop_add_timer(b->loop, 0, 0, on_timer, p, &p->timer);
	if (r < 0) {
		kha_diag_set(d, r, "event loop: %s", strerror(-r));
		goto fail;
	}
	kha_loop_timer_stop(p->timer);
	if (b->cfg.bfd) {
		r = bfd_open_tx(b, p, d);
		if (r < 0)
			goto fail;
		kha_loop_timer_stop(p->bfd_timer);
	}
	/* the listening sockets learn the key of each peer */
	if (b->cfg.md5_password && b->listen_fd[fam_index(pc->addr.family)] >= 0) {
		r = set_md5(b->listen_fd[fam_index(pc->addr.family)], b, p);
		if (r < 0) {
			kha_diag_set(d, r, "--md5-password-file: TCP_MD5SIG for %s: %s%s", p->name,
				     strerror(-r),
				     r == -ENOENT || r == -ENOPROTOOPT
					     ? " (kernel without CONFIG_TCP_MD5SIG?)"
					     : "");
			goto fail;
		}
	}
	*ret = p;
	return 0;
fail:
	peer_free(p);
	return r;
}

static void peer_start(struct peer *p)
{
	perform(p, kha_bgp_fsm_start(&p->fsm, kha_now_us()), "start");
	if (p->bfd_fd >= 0)
		bfd_rearm(p);
}

/* ---- health tracks ---- */

static void on_track_change(void *userdata, size_t i, bool up)
{
	struct kha_bgp *b = userdata;

	(void)i;
	(void)up;
	if (!b->stopping)
		sync_announcements(b, false);
}

static int tracks_start(struct kha_bgp *b)
{
	struct kha_http_tracks_config tc = {.urls = (const char *const *)b->cfg.track_urls,
					    .n = b->cfg.ntracks,
					    .interval_us = b->cfg.track_interval_us,
					    .timeout_us = b->cfg.track_timeout_us,
					    .fall = b->cfg.track_fall,
					    .rise = b->cfg.track_rise,
					    .cacert = b->cfg.track_cacert};
	int r = kha_http_tracks_new(b->loop, &tc, on_track_change, b, &b->tracks);

	return r < 0 ? r : kha_http_tracks_start(b->tracks);
}

/* ---- metrics and status ---- */

static void collect(FILE *out, void *userdata)
{
	const struct kha_bgp *b = userdata;
	char l[256], u[256];

	kha_metrics_write_header(out, "kha_bgp_announced",
				 "1 while the service address is announced (health tracks pass)",
				 KHA_METRIC_GAUGE);
	kha_metrics_write_sample(out, "kha_bgp_announced", NULL, b->announcing);
	kha_metrics_write_header(out, "kha_bgp_graceful_shutdown",
				 "1 while the announcement carries GRACEFUL_SHUTDOWN (stopping)",
				 KHA_METRIC_GAUGE);
	kha_metrics_write_sample(out, "kha_bgp_graceful_shutdown", NULL, b->gshut);
	kha_metrics_write_header(out, "kha_bgp_announcement_changes_total",
				 "Changes between announced and withdrawn", KHA_METRIC_COUNTER);
	kha_metrics_write_sample(out, "kha_bgp_announcement_changes_total", NULL,
				 (double)b->announce_changes);
	kha_metrics_write_header(out, "kha_bgp_session_state",
				 "1 for the current BGP state of each peer's session",
				 KHA_METRIC_GAUGE);
	for (size_t i = 0; i < b->npeers; i++)
		for (int s = 0; s < KHA_BGP_STATE__MAX; s++) {
			snprintf(l, sizeof(l), "peer=\"%s\",state=\"%s\"", b->peers[i]->name,
				 kha_bgp_state_name(s));
			kha_metrics_write_sample(out, "kha_bgp_session_state", l,
						 (int)b->peers[i]->fsm.state == s);
		}
#define PEER_COUNTER(metric, help, field)                                                     \
	do {                                                                                  \
		kha_metrics_write_header(out, metric, help, KHA_METRIC_COUNTER);              \
		for (size_t i = 0; i < b->npeers; i++) {                                      \
			snprintf(l, sizeof(l), "peer=\"%s\"", b->peers[i]->name);             \
			kha_metrics_write_sample(out, metric, l, (double)b->peers[i]->field); \
		}                                                                             \
	} while (0)
	PEER_COUNTER("kha_bgp_session_flaps_total", "Established sessions that went down", flaps);
	PEER_COUNTER("kha_bgp_messages_received_total", "BGP messages received", msgs_in);
	PEER_COUNTER("kha_bgp_messages_sent_total", "BGP messages sent", msgs_out);
	PEER_COUNTER("kha_bgp_updates_sent_total", "UPDATE messages sent", updates_out);
	PEER_COUNTER("kha_bgp_updates_received_total", "UPDATE messages received (ignored)",
		     updates_in);
	PEER_COUNTER("kha_bgp_notifications_sent_total", "NOTIFICATION messages sent", notif_out);
	PEER_COUNTER("kha_bgp_notifications_received_total", "NOTIFICATION messages received",
		     notif_in);
	PEER_COUNTER("kha_bgp_malformed_messages_total",
		     "Messages that failed a check (answered by a NOTIFICATION)", malformed);
	if (b->cfg.bfd) {
		kha_metrics_write_header(out, "kha_bgp_bfd_state",
					 "1 for the current BFD state of each peer's session",
					 KHA_METRIC_GAUGE);
		for (size_t i = 0; i < b->npeers; i++)
			for (int s = 0; s <= KHA_BFD_UP; s++) {
				snprintf(l, sizeof(l), "peer=\"%s\",state=\"%s\"",
					 b->peers[i]->name, kha_bfd_state_name(s));
				kha_metrics_write_sample(out, "kha_bgp_bfd_state", l,
							 (int)b->peers[i]->bfd.state == s);
			}
		PEER_COUNTER("kha_bgp_bfd_flaps_total", "BFD sessions that went down from Up",
			     bfd_flaps);
		PEER_COUNTER("kha_bgp_bfd_packets_received_total", "BFD packets accepted",
			     bfd_received);
		kha_metrics_write_header(out, "kha_bgp_bfd_dropped_total",
					 "BFD packets dropped, by reason", KHA_METRIC_COUNTER);
		for (int w = 0; w < DROP__MAX; w++) {
			static const char *const why[] = {"ttl", "malformed", "unknown_session"};

			snprintf(l, sizeof(l), "reason=\"%s\"", why[w]);
			kha_metrics_write_sample(out, "kha_bgp_bfd_dropped_total", l,
						 (double)b->bfd_dropped[w]);
		}
	}
#undef PEER_COUNTER
	kha_metrics_write_header(out, "kha_bgp_connections_refused_total",
				 "Incoming connections refused (unknown address, collision)",
				 KHA_METRIC_COUNTER);
	kha_metrics_write_sample(out, "kha_bgp_connections_refused_total", NULL,
				 (double)b->rejected);
	kha_metrics_write_header(out, "kha_bgp_config_reloads_total",
				 "Configuration reloads on SIGHUP, by result", KHA_METRIC_COUNTER);
	kha_metrics_write_sample(out, "kha_bgp_config_reloads_total", "result=\"ok\"",
				 (double)b->reloads);
	kha_metrics_write_sample(out, "kha_bgp_config_reloads_total", "result=\"failed\"",
				 (double)b->reload_failures);
	if (kha_http_tracks_count(b->tracks)) {
		kha_metrics_write_header(out, "kha_bgp_track_up", "1 while a health track passes",
					 KHA_METRIC_GAUGE);
		for (size_t i = 0; i < kha_http_tracks_count(b->tracks); i++) {
			snprintf(l, sizeof(l), "url=\"%s\"",
				 kha_metrics_escape(u, sizeof(u),
						    kha_http_tracks_url(b->tracks, i)));
			kha_metrics_write_sample(out, "kha_bgp_track_up", l,
						 kha_http_tracks_up(b->tracks, i));
		}
	}
}

static json_t *status_json(const struct kha_bgp *b)
{
	json_t *root = json_object(), *peers = json_array(), *ann = json_array(),
	       *tracks = json_array();
	char a[INET6_ADDRSTRLEN + 8];
	uint64_t now = kha_now_us();

	json_object_set_new(root, "router_id",
			    json_string(kha_bgp_addr_str(&b->cfg.router_id, a, sizeof(a))));
	json_object_set_new(root, "local_as", json_integer(b->cfg.local_as));
	json_object_set_new(root, "announcing", json_boolean(b->announcing));
	json_object_set_new(root, "graceful_shutdown", json_boolean(b->gshut));
	json_object_set_new(root, "interface", json_string(b->cfg.interface));
	json_object_set_new(root, "addresses_held", json_boolean(b->addrs_held));
	for (size_t i = 0; i < b->cfg.nannounce; i++) {
		char s[INET6_ADDRSTRLEN];
		char t[INET6_ADDRSTRLEN + 8];

		snprintf(t, sizeof(t), "%s/%u",
			 kha_bgp_addr_str(&b->cfg.announce[i].addr, s, sizeof(s)),
			 b->cfg.announce[i].len);
		json_array_append_new(ann, json_string(t));
	}
	json_object_set_new(root, "announce", ann);
	for (size_t i = 0; i < b->npeers; i++) {
		const struct peer *p = b->peers[i];
		json_t *o = json_object();
		char id[INET_ADDRSTRLEN] = "";

		json_object_set_new(o, "address", json_string(p->name));
		json_object_set_new(o, "as", json_integer(p->as));
		json_object_set_new(o, "state", json_string(kha_bgp_state_name(p->fsm.state)));
		if (p->remote_id)
			inet_ntop(AF_INET, &p->remote_id, id, sizeof(id));
		json_object_set_new(o, "router_id", json_string(id));
		json_object_set_new(
			o, "established_seconds",
			json_integer(p->fsm.state == KHA_BGP_ESTABLISHED
					     ? (json_int_t)((now - p->established_at_us) / 1000000)
					     : 0));
		json_object_set_new(o, "hold_time_seconds",
				    json_integer((json_int_t)(p->fsm.hold_us / 1000000)));
		json_object_set_new(o, "local_address",
				    json_string(kha_bgp_addr_str(&p->local, a, sizeof(a))));
		json_object_set_new(o, "announced_ipv4", json_boolean(p->announced[0]));
		json_object_set_new(o, "announced_ipv6", json_boolean(p->announced[1]));
		json_object_set_new(o, "flaps", json_integer((json_int_t)p->flaps));
		json_object_set_new(o, "messages_received", json_integer((json_int_t)p->msgs_in));
		json_object_set_new(o, "messages_sent", json_integer((json_int_t)p->msgs_out));
		json_object_set_new(o, "updates_received", json_integer((json_int_t)p->updates_in));
		json_object_set_new(o, "malformed_messages",
				    json_integer((json_int_t)p->malformed));
		json_object_set_new(o, "last_error", json_string(p->last_error));
		if (p->bfd_fd >= 0) {
			json_t *f = json_object();

			json_object_set_new(f, "state",
					    json_string(kha_bfd_state_name(p->bfd.state)));
			json_object_set_new(f, "detect_ms",
					    json_real((double)kha_bfd_detect_us(&p->bfd) / 1e3));
			json_object_set_new(f, "flaps", json_integer((json_int_t)p->bfd_flaps));
			json_object_set_new(o, "bfd", f);
		} else {
			json_object_set_new(o, "bfd", json_null());
		}
		json_array_append_new(peers, o);
	}
	json_object_set_new(root, "peers", peers);
	for (size_t i = 0; i < kha_http_tracks_count(b->tracks); i++) {
		json_t *t = json_object();

		json_object_set_new(t, "url", json_string(kha_http_tracks_url(b->tracks, i)));
		json_object_set_new(t, "up", json_boolean(kha_http_tracks_up(b->tracks, i)));
		json_object_set_new(t, "detail", json_string(kha_http_tracks_detail(b->tracks, i)));
		json_array_append_new(tracks, t);
	}
	json_object_set_new(root, "tracks", tracks);
	return root;
}

static void status_route(const struct kha_httpd_request *req, struct kha_httpd_response *resp,
			 void *userdata)
{
	json_t *root = status_json(userdata);

	(void)req;
	resp->content_type = "application/json";
	json_dumpf(root, resp->body, JSON_COMPACT);
	fputc('\n', resp->body);
	json_decref(root);
}

static bool ready(void *userdata, char *reason, size_t size)
{
	const struct kha_bgp *b = userdata;

	for (size_t i = 0; i < b->npeers; i++)
		if (b->peers[i]->fsm.state == KHA_BGP_ESTABLISHED)
			return true;
	snprintf(reason, size, "no BGP session established");
	return false;
}

/* ---- lifecycle ---- */

static int open_listener(struct kha_bgp *b, int family, struct kha_diag *d)
{
	struct kha_bgp_addr any = {.family = family};
	struct sockaddr_storage ss;
	socklen_t len;
	int one = 1, fd;

	fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
	if (fd < 0) {
		if (family == AF_INET6 && errno == EAFNOSUPPORT)
			return 0;
		return kha_diag_set(d, errno, "BGP socket: %s", strerror(errno));
	}
	b->listen_fd[fam_index(family)] = fd;
	to_sockaddr(&any, b->cfg.listen_port, &ss, &len);
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    (family == AF_INET6 &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0) ||
	    set_ttl(fd, family, b->cfg.gtsm) < 0)
		return kha_diag_set(d, errno, "BGP socket: %s", strerror(errno));
	if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
		if (family == AF_INET6 && errno == EADDRNOTAVAIL) {
			close(fd); /* IPv6 disabled here */
			b->listen_fd[1] = -1;
			return 0;
		}
		return kha_diag_set(d, errno, "cannot listen on TCP port %u: %s%s",
				    b->cfg.listen_port, strerror(errno),
				    errno == EACCES ? " (needs CAP_NET_BIND_SERVICE)"
				    : errno == EADDRINUSE
					    ? " (another BGP daemon runs here? --listen-port)"
					    : "");
	}
	if (listen(fd, 16) < 0)
		return kha_diag_set(d, errno, "listen: %s", strerror(errno));
	return kha_loop_add_io(b->loop, fd, EPOLLIN, 0, on_accept, b, NULL);
}

int kha_bgp_new(struct kha_bgp_config *cfg, struct kha_diag *d, struct kha_bgp **ret)
{
	struct kha_bgp *b = calloc(1, sizeof(*b));
	int r;

	if (!b)
		return kha_diag_set(d, ENOMEM, "out of memory");
	b->cfg = *cfg;
	memset(cfg->track_urls, 0, sizeof(cfg->track_urls));
	cfg->ntracks = 0;
	cfg->md5_password = NULL;
	cfg->track_cacert = NULL;
	b->listen_fd[0] = b->listen_fd[1] = -1;
	b->bfd_rx[0] = b->bfd_rx[1] = -1;
	b->npeers = 0;
	b->ifindex = if_nametoindex(b->cfg.interface);
	if (!b->ifindex) {
		r = kha_diag_set(d, ENODEV, "--interface %s: no such interface", b->cfg.interface);
		goto fail;
	}
	r = kha_loop_new(&b->loop);
	if (r < 0) {
		kha_diag_set(d, r, "event loop: %s", strerror(-r));
		goto fail;
	}
	b->nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
	if (!b->nl || mnl_socket_bind(b->nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		r = kha_diag_set(d, errno, "rtnetlink socket: %s", strerror(errno));
		goto fail;
	}
	if (b->cfg.listen_port) {
		r = open_listener(b, AF_INET, d);
		if (r == 0)
			r = open_listener(b, AF_INET6, d);
		if (r < 0)
			goto fail;
	}
	if (b->cfg.bfd) {
		r = bfd_open_rx(b, AF_INET, d);
		if (r == 0)
			r = bfd_open_rx(b, AF_INET6, d);
		if (r < 0)
			goto fail;
	}
	for (size_t i = 0; i < b->cfg.npeers; i++) {
		r = peer_new(b, &b->cfg.peers[i], d, &b->peers[b->npeers]);
		if (r < 0)
			goto fail;
		b->npeers++;
	}
	if (b->cfg.metrics_addr[0]) {
		r = kha_httpd_admin_new(b->loop, b->cfg.metrics_addr, collect, status_route, ready,
					b, &b->metrics, &b->httpd, d);
		if (r < 0)
			goto fail;
	}
	*ret = b;
	return 0;
fail:
	kha_bgp_free(b);
	return r;
}

void kha_bgp_set_reload(struct kha_bgp *b, kha_bgp_reload_fn fn, void *userdata)
{
	b->reload_fn = fn;
	b->reload_userdata = userdata;
}

/* Writes what is still queued, for at most timeout_ms in all (the Cease before exit). */
static void flush_all(struct kha_bgp *b, int timeout_ms)
{
	uint64_t end = kha_now_us() + (uint64_t)timeout_ms * 1000;

	for (;;) {
		struct pollfd pfd[KHA_BGP_MAX_PEERS];
		nfds_t n = 0;
		uint64_t now = kha_now_us();

		for (size_t i = 0; i < b->npeers; i++) {
			struct peer *p = b->peers[i];

			if (p->fd >= 0 && p->tx_len && flush(p) == 0 && p->tx_len)
				pfd[n++] = (struct pollfd){.fd = p->fd, .events = POLLOUT};
		}
		if (!n || now >= end)
			return;
		if (poll(pfd, n, (int)((end - now) / 1000) + 1) <= 0)
			return;
	}
}

/* The end of a stop: withdraw, Cease, BFD AdminDown, addresses removed, quit. */
static void finish_stop(struct kha_bgp *b)
{
	uint64_t now = kha_now_us();

	b->withdrawn = true;
	b->gshut = false;
	sync_announcements(b, false);
	for (size_t i = 0; i < b->npeers; i++) {
		struct peer *p = b->peers[i];
		unsigned act = kha_bgp_fsm_stop(&p->fsm, now, KHA_BGP_CEASE_ADMIN_SHUTDOWN);

		/* the Cease goes after the withdrawal: flush it before the socket closes */
		if ((act & KHA_BGP_ACT_SEND_NOTIFY) && p->fd >= 0) {
			uint8_t buf[32];
			int len = kha_bgp_encode_notification(&p->fsm.notify_out, buf, sizeof(buf));

			if (len > 0 && queue(p, buf, (size_t)len) == 0)
				p->notif_out++;
			kha_info("notification sent",
				 "peer=%s code=%u subcode=%u error=\"cease, administrative "
				 "shutdown\"",
				 KHA_LOGQ(p->name), KHA_BGP_ERR_CEASE,
				 KHA_BGP_CEASE_ADMIN_SHUTDOWN);
		}
		if (p->bfd_fd >= 0) {
			enum kha_bfd_state before = p->bfd.state;

			bfd_perform(p, kha_bfd_fsm_admin_down(&p->bfd, now), before);
		}
	}
	flush_all(b, 1000);
	for (size_t i = 0; i < b->npeers; i++) {
		struct peer *p = b->peers[i];

		if (p->fd >= 0)
			shutdown(p->fd, SHUT_WR);
		perform(p, KHA_BGP_ACT_CLOSE | (p->prev != p->fsm.state ? KHA_BGP_ACT_STATE : 0),
			"stopped");
	}
	if (b->addrs_held)
		addrs_set(b, false);
	kha_info("stopped", "peers=%zu", b->npeers);
	kha_loop_quit(b->loop, 0);
}

static void on_stop_timer(struct kha_loop_source *src, void *userdata)
{
	(void)src;
	kha_info("graceful shutdown wait over: withdrawing", "%s", "");
	finish_stop(userdata);
}

static bool any_established(const struct kha_bgp *b)
{
	for (size_t i = 0; i < b->npeers; i++)
		if (b->peers[i]->fsm.state == KHA_BGP_ESTABLISHED &&
		    b->peers[i]->announced[0] + b->peers[i]->announced[1])
			return true;
	return false;
}

static bool announce_equal(const struct kha_bgp_config *a, const struct kha_bgp_config *c)
{
	if (a->nannounce != c->nannounce)
		return false;
	for (size_t i = 0; i < a->nannounce; i++)
		if (!kha_bgp_addr_equal(&a->announce[i].addr, &c->announce[i].addr) ||
		    a->announce[i].len != c->announce[i].len)
			return false;
	return true;
}

static bool tracks_equal(const struct kha_bgp_config *a, const struct kha_bgp_config *c)
{
	if (a->ntracks != c->ntracks || a->track_interval_us != c->track_interval_us ||
	    a->track_timeout_us != c->track_timeout_us || a->track_fall != c->track_fall ||
	    a->track_rise != c->track_rise ||
	    (a->track_cacert == NULL) != (c->track_cacert == NULL) ||
	    (a->track_cacert && strcmp(a->track_cacert, c->track_cacert) != 0))
		return false;
	for (size_t i = 0; i < a->ntracks; i++)
		if (strcmp(a->track_urls[i], c->track_urls[i]) != 0)
			return false;
	return true;
}

static bool peer_cfg_equal(const struct kha_bgp_peer_config *a, uint32_t a_default,
			   const struct kha_bgp_peer_config *c, uint32_t c_default)
{
	return kha_bgp_addr_equal(&a->addr, &c->addr) && a->port == c->port &&
	       (a->as ? a->as : a_default) == (c->as ? c->as : c_default);
}

/* Warns once about the keys of c that differ from the running ones: only a restart applies them. */
static void warn_kept(const struct kha_bgp *b, const struct kha_bgp_config *c)
{
	char kept[160] = "";
	size_t n;

#define KEPT(cond, name)                                                   \
	do {                                                               \
		if (cond) {                                                \
			n = strlen(kept);                                  \
			snprintf(kept + n, sizeof(kept) - n, " %s", name); \
		}                                                          \
	} while (0)
	KEPT(!kha_bgp_addr_equal(&c->router_id, &b->cfg.router_id), "router-id");
	KEPT(c->local_as != b->cfg.local_as, "local-as");
	KEPT(c->bfd != b->cfg.bfd || c->bfd_interval_us != b->cfg.bfd_interval_us ||
		     c->bfd_multiplier != b->cfg.bfd_multiplier,
	     "bfd");
	KEPT((c->md5_password == NULL) != (b->cfg.md5_password == NULL) ||
		     (c->md5_password && strcmp(c->md5_password, b->cfg.md5_password) != 0),
	     "md5-password-file");
	KEPT(c->gtsm != b->cfg.gtsm, "gtsm");
	KEPT(c->listen_port != b->cfg.listen_port, "listen-port");
	KEPT(strcmp(c->interface, b->cfg.interface) != 0, "interface");
	KEPT(strcmp(c->metrics_addr, b->cfg.metrics_addr) != 0, "metrics-addr");
#undef KEPT
	if (kept[0])
		kha_warn("configuration keys not applied until a restart", "keys=\"%s\"", kept + 1);
}

/* Peers: the same ones are kept as they are (new timers for their next session), others go
 * or come; counts them in *added and *removed. */
static void reload_peers(struct kha_bgp *b, const struct kha_bgp_config *c, size_t *added,
			 size_t *removed)
{
	struct peer *keep[KHA_BGP_MAX_PEERS] = {};
	struct kha_diag d = {};
	char q[KHA_DIAG_MAX + 8];
	size_t nkeep = 0;

	for (size_t i = 0; i < b->npeers; i++) {
		struct peer *p = b->peers[i];
		bool stays = false;

		for (size_t j = 0; j < c->npeers && !stays; j++)
			stays = peer_cfg_equal(&p->cfg, p->as, &c->peers[j],
					       c->peers[j].as ? c->peers[j].as : c->peer_as);
		if (stays) {
			struct kha_bgp_fsm_config fc = fsm_config(&b->cfg);

			p->fsm.cfg.hold_time_s = fc.hold_time_s; /* for the next session */
			p->fsm.cfg.keepalive_us = fc.keepalive_us;
			keep[nkeep++] = p;
			continue;
		}
		perform(p, kha_bgp_fsm_stop(&p->fsm, kha_now_us(), KHA_BGP_CEASE_PEER_DECONFIGURED),
			"peer removed");
		flush_all(b, 200);
		kha_info("peer removed", "peer=%s", KHA_LOGQ(p->name));
		peer_free(p);
		(*removed)++;
	}
	memcpy(b->peers, keep, sizeof(keep));
	b->npeers = nkeep;
	for (size_t j = 0; j < c->npeers; j++) {
		struct peer *p = NULL;

		if (find_peer(b, &c->peers[j].addr))
			continue;
		if (b->npeers >= KHA_BGP_MAX_PEERS || peer_new(b, &c->peers[j], &d, &p) < 0) {
			kha_error("peer not added", "error=%s", kha_log_quote(q, sizeof(q), d.msg));
			continue;
		}
		b->peers[b->npeers++] = p;
		kha_info("peer added", "peer=%s as=%u", KHA_LOGQ(p->name), p->as);
		peer_start(p);
		(*added)++;
	}
}

/* Health tracks: restarted with c's when they differ (c's URLs and CA are taken). */
static void reload_tracks(struct kha_bgp *b, struct kha_bgp_config *c)
{
	if (tracks_equal(c, &b->cfg))
		return;
	kha_http_tracks_free(b->tracks);
	b->tracks = NULL;
	for (size_t i = 0; i < b->cfg.ntracks; i++)
		free(b->cfg.track_urls[i]);
	memcpy(b->cfg.track_urls, c->track_urls, sizeof(c->track_urls));
	b->cfg.ntracks = c->ntracks;
	c->ntracks = 0;
	memset(c->track_urls, 0, sizeof(c->track_urls));
	b->cfg.track_interval_us = c->track_interval_us;
	b->cfg.track_timeout_us = c->track_timeout_us;
	b->cfg.track_fall = c->track_fall;
	b->cfg.track_rise = c->track_rise;
	free(b->cfg.track_cacert);
	b->cfg.track_cacert = c->track_cacert;
	c->track_cacert = NULL;
	if (tracks_start(b) < 0)
		kha_error("health tracks not restarted", "%s", "");
}

static void reload(struct kha_bgp *b)
{
	struct kha_bgp_config c;
	struct kha_diag d = {};
	char q[KHA_DIAG_MAX + 8];
	size_t added = 0, removed = 0;
	bool reannounce;

	kha_bgp_config_init(&c);
	if (b->reload_fn(b->reload_userdata, &c, &d) < 0) {
		b->reload_failures++;
		kha_error("configuration not reloaded, keeping the running one", "error=%s",
			  kha_log_quote(q, sizeof(q), d.msg));
		kha_bgp_config_release(&c);
		return;
	}
	warn_kept(b, &c);
	/* the announcement: withdraw what goes, then announce the new set */
	if (!announce_equal(&c, &b->cfg)) {
		b->withdrawn = true;
		sync_announcements(b, false);
		b->withdrawn = false;
		memcpy(b->cfg.announce, c.announce, sizeof(c.announce));
		b->cfg.nannounce = c.nannounce;
	}
	reannounce = memcmp(c.communities, b->cfg.communities, sizeof(c.communities)) != 0 ||
		     c.ncommunities != b->cfg.ncommunities || c.has_med != b->cfg.has_med ||
		     c.med != b->cfg.med || c.local_pref != b->cfg.local_pref ||
		     !kha_bgp_addr_equal(&c.next_hop4, &b->cfg.next_hop4) ||
		     !kha_bgp_addr_equal(&c.next_hop6, &b->cfg.next_hop6);
	memcpy(b->cfg.communities, c.communities, sizeof(c.communities));
	b->cfg.ncommunities = c.ncommunities;
	b->cfg.has_med = c.has_med;
	b->cfg.med = c.med;
	b->cfg.local_pref = c.local_pref;
	b->cfg.next_hop4 = c.next_hop4;
	b->cfg.next_hop6 = c.next_hop6;
	b->cfg.hold_time_us = c.hold_time_us;
	b->cfg.keepalive_us = c.keepalive_us;
	b->cfg.connect_retry_us = c.connect_retry_us;
	b->cfg.passive = c.passive;
	b->cfg.graceful_shutdown_wait_us = c.graceful_shutdown_wait_us;
	b->cfg.peer_as = c.peer_as;
	reload_peers(b, &c, &added, &removed);
	memcpy(b->cfg.peers, c.peers, sizeof(c.peers));
	b->cfg.npeers = c.npeers;
	reload_tracks(b, &c);
	kha_bgp_config_release(&c);
	sync_announcements(b, reannounce);
	b->reloads++;
	kha_info("configuration reloaded", "peers=%zu added=%zu removed=%zu announcing=%s",
		 b->npeers, added, removed, b->announcing ? "true" : "false");
}

static void on_signal(struct kha_loop_source *src, int signo, void *userdata)
{
	struct kha_bgp *b = userdata;

	(void)src;
	if (signo == SIGHUP) {
		if (b->stopping)
			return;
		if (b->reload_fn)
			reload(b);
		else
			kha_warn("SIGHUP ignored: no configuration to read again", "%s", "");
		return;
	}
	if (b->stopping) {
		kha_info("second signal: stopping now", "%s", "");
		finish_stop(b);
		return;
	}
	b->stopping = true;
	kha_http_tracks_stop(b->tracks);
	if (!b->announcing || !any_established(b) || !b->cfg.graceful_shutdown_wait_us) {
		kha_info("stopping", "signal=%s graceful_shutdown=false",
			 signo == SIGTERM ? "SIGTERM" : "SIGINT");
		finish_stop(b);
		return;
	}
	/* RFC 8326: announce again with GRACEFUL_SHUTDOWN, let the routers move away, then go */
	kha_info("stopping", "signal=%s graceful_shutdown=true wait_ms=%llu",
		 signo == SIGTERM ? "SIGTERM" : "SIGINT",
		 (unsigned long long)(b->cfg.graceful_shutdown_wait_us / 1000));
	b->gshut = true;
	sync_announcements(b, false);
	if (kha_loop_add_timer(b->loop, b->cfg.graceful_shutdown_wait_us, 0, on_stop_timer, b,
			       &b->stop_timer) < 0)
		finish_stop(b);
}

int kha_bgp_run(struct kha_bgp *b)
{
	static const int sigs[] = {SIGTERM, SIGINT, SIGHUP};
	char a[INET6_ADDRSTRLEN];
	int r;

	r = kha_loop_add_signals(b->loop, sigs, KHA_ARRAY_SIZE(sigs), on_signal, b);
	if (r == 0)
		r = tracks_start(b);
	if (r < 0)
		return r;
	kha_info("started",
		 "router_id=%s local_as=%u peers=%zu prefixes=%zu hold_time=%llus bfd=%s "
		 "bfd_detect_ms=%llu interface=%s",
		 KHA_LOGQ(kha_bgp_addr_str(&b->cfg.router_id, a, sizeof(a))), b->cfg.local_as,
		 b->npeers, b->cfg.nannounce,
		 (unsigned long long)(b->cfg.hold_time_us / KHA_USEC_PER_SEC),
		 b->cfg.bfd ? "true" : "false",
		 (unsigned long long)(b->cfg.bfd_interval_us * b->cfg.bfd_multiplier / 1000),
		 KHA_LOGQ(b->cfg.interface));
	sync_announcements(b, false);
	for (size_t i = 0; i < b->npeers; i++)
		peer_start(b->peers[i]);
	r = kha_loop_run(b->loop);
	if (b->addrs_held)
		addrs_set(b, false);
	return r;
}

void kha_bgp_free(struct kha_bgp *b)
{
	if (!b)
		return;
	kha_http_tracks_free(b->tracks);
	for (size_t i = 0; i < b->npeers; i++)
		peer_free(b->peers[i]);
	kha_httpd_free(b->httpd);
	kha_loop_free(b->loop);
	kha_metrics_free(b->metrics);
	if (b->nl)
		mnl_socket_close(b->nl);
	for (int i = 0; i < 2; i++) {
		if (b->listen_fd[i] >= 0)
			close(b->listen_fd[i]);
		if (b->bfd_rx[i] >= 0)
			close(b->bfd_rx[i]);
	}
	kha_bgp_config_release(&b->cfg);
	free(b);
}
