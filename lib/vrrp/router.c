// SPDX-License-Identifier: MIT
/*
 * The VRRP router of kha vip: one virtual router (VRID) with one virtual IPv4 address on one
 * interface, all on one kha_loop thread (plus a thread for the blocking HTTP health tracks).
 *
 * Sockets: one raw IPPROTO_VRRP socket bound to the interface (SO_BINDTODEVICE), joined to
 * 224.0.0.18 unless unicast peers are given; it sends with TTL 255 from the primary address
 * (IP_PKTINFO) and receives every advertisement on the interface, IPv4 header included. One
 * AF_PACKET socket sends the gratuitous ARPs; one rtnetlink socket adds and removes the VIP.
 *
 * Invariant: the VIP is on the interface exactly while the state machine is MASTER (plus the
 * moment between a takeover decision and the netlink answer). At start a VIP left behind by a
 * killed run (recognised by our label) is removed; a VIP configured by someone else is an error.
 */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <linux/if_packet.h>
#include <net/if_arp.h>
#include <linux/rtnetlink.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <libmnl/libmnl.h>

#include "kha/http.h"
#include "kha/httpd.h"
#include "kha/log.h"
#include "kha/loop.h"
#include "kha/metrics.h"
#include "kha/parse.h"
#include "kha/proc.h"
#include "kha/rtnl.h"
#include "kha/track.h"
#include "kha/vrrp.h"
#include "kha/banned.h"

struct kha_vrrp {
	struct kha_vrrp_config cfg;
	struct kha_loop *loop;
	struct kha_vrrp_fsm fsm;
	struct kha_loop_source *timer, *garp_timer;
	struct kha_metrics *metrics;
	struct kha_httpd *httpd;
	struct mnl_socket *nl;
	struct mnl_socket *nl_link; /* RTMGRP_LINK: carrier changes of the interface */
	unsigned nl_seq;
	bool link_up;
	int fd, arp_fd;
	unsigned ifindex;
	uint8_t mac[6];
	uint32_t primary;
	char label[IFNAMSIZ];
	char vip_text[INET_ADDRSTRLEN + 4];
	bool vip_held;
	unsigned vip_lifetime_s; /* valid lifetime of the VIP, refreshed with every advert */
	int guard_fd;		 /* write end of the guard's pipe, -1: no guard */
	pid_t guard_pid;
	bool stopping; /* SIGTERM seen: late track results change nothing */
	enum kha_vrrp_state prev_state;
	int exit_code;

	/* counters (loop thread only; the httpd runs on the same loop) */
	uint64_t transitions, adverts_sent, adverts_received, send_errors, garps_sent;
	uint64_t dropped[KHA_VRRP_DROP__MAX];
	uint64_t became_master_wall_us;

	kha_vrrp_reload_fn reload_fn;
	void *reload_userdata;
	uint64_t reloads, reload_failures;

	/* health tracks */
	struct kha_http_tracks *tracks;
	bool faulted;
};

void kha_vrrp_config_init(struct kha_vrrp_config *c)
{
	memset(c, 0, sizeof(*c));
	c->adver_interval_us = KHA_USEC_PER_SEC;
	c->preempt = true;
	c->priority = 100;
	c->garp_count = 5;
	c->garp_repeat_us = 5 * KHA_USEC_PER_SEC;
	c->track_interval_us = KHA_USEC_PER_SEC;
	c->track_timeout_us = KHA_USEC_PER_SEC;
	c->track_fall = 3;
	c->track_rise = 2;
	snprintf(c->metrics_addr, sizeof(c->metrics_addr), "127.0.0.1:9444");
}

void kha_vrrp_config_release(struct kha_vrrp_config *c)
{
	for (size_t i = 0; i < c->ntracks; i++) {
		free(c->track_urls[i]);
		c->track_urls[i] = NULL;
	}
	c->ntracks = 0;
	free(c->notify);
	c->notify = NULL;
}

static const char *ntoa(uint32_t a, char *buf, size_t size)
{
	struct in_addr in = {.s_addr = a};

	return inet_ntop(AF_INET, &in, buf, (socklen_t)size) ? buf : "?";
}

/* ---- the interface: index, primary address, MAC, a VIP left behind ---- */

static int inspect_interface(struct kha_vrrp *v, bool *ret_stale, struct kha_diag *d)
{
	struct ifaddrs *list = NULL, *i;
	const char *ifname = v->cfg.interface;
	size_t n = strlen(ifname);
	bool have_mac = false;
	int r = 0;

	*ret_stale = false;
	v->ifindex = if_nametoindex(ifname);
	if (!v->ifindex)
		return kha_diag_set(d, ENODEV, "--interface %s: no such interface", ifname);
	if (getifaddrs(&list) < 0)
		return kha_diag_set(d, errno, "getifaddrs: %s", strerror(errno));
	for (i = list; i; i = i->ifa_next) {
		bool ours = strncmp(i->ifa_name, ifname, n) == 0 &&
			    (i->ifa_name[n] == '\0' || i->ifa_name[n] == ':');

		if (!i->ifa_addr)
			continue;
		if (i->ifa_addr->sa_family == AF_PACKET && strcmp(i->ifa_name, ifname) == 0) {
			const struct sockaddr_ll *ll = (const struct sockaddr_ll *)i->ifa_addr;

			if (ll->sll_halen == 6 && ll->sll_hatype == ARPHRD_ETHER &&
			    !(i->ifa_flags & IFF_LOOPBACK)) {
				memcpy(v->mac, ll->sll_addr, 6);
				have_mac = true;
				v->link_up =
					(i->ifa_flags & IFF_UP) && (i->ifa_flags & IFF_RUNNING);
			}
		} else if (i->ifa_addr->sa_family == AF_INET) {
			uint32_t a = ((const struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr;

			if (a == v->cfg.vip) {
				/* getifaddrs names IPv4 addresses by their label */
				if (strcmp(i->ifa_name, v->label) == 0 && ours) {
					*ret_stale = true;
					continue;
				}
				r = kha_diag_set(d, EEXIST,
						 "--vip %s: already configured on %s, not by kha "
						 "vip (remove it, or choose another address)",
						 v->vip_text, i->ifa_name);
				goto out;
			}
			if (ours && !v->primary)
				v->primary = a;
		}
	}
	if (!have_mac) {
		r = kha_diag_set(d, EPROTONOSUPPORT,
				 "--interface %s: not an Ethernet interface (no MAC address)",
				 ifname);
		goto out;
	}
	if (!v->primary)
		r = kha_diag_set(d, EADDRNOTAVAIL,
				 "--interface %s: no IPv4 address (VRRP speaks from the "
				 "interface's primary address)",
				 ifname);
out:
	freeifaddrs(list);
	return r;
}

/* ---- the VIP over rtnetlink ---- */

/* Whole seconds (the kernel's unit), at most a Master_Down_Interval: see vip_netlink(). */
static unsigned vip_lifetime(const struct kha_vrrp *v)
{
	return (unsigned)KHA_MAX(
		1, kha_vrrp_master_down_us(v->cfg.priority, v->cfg.adver_interval_us) /
			   KHA_USEC_PER_SEC);
}

static void guard_say(struct kha_vrrp *v, char what);

static int vip_netlink_flags(struct kha_vrrp *v, bool add, bool any_prefix, unsigned flags)
{
	char buf[KHA_RTNL_ADDR_MSG_SIZE] __attribute__((aligned(8)));
	struct kha_rtnl_addr a = {.family = AF_INET,
				  .addr = &v->cfg.vip,
				  .prefixlen = any_prefix ? 32 : v->cfg.prefix,
				  .ifindex = v->ifindex,
				  .label = v->label,
				  .local_only = any_prefix,
				  .lifetime_s = v->vip_lifetime_s};

	return kha_rtnl_request(
		v->nl, kha_rtnl_addr_msg(buf, add ? RTM_NEWADDR : RTM_DELADDR, (uint16_t)flags, &a),
		&v->nl_seq);
}

/*
 * Adds (add: NLM_F_EXCL; refresh: NLM_F_REPLACE, which also re-creates a missing address) or
 * removes the VIP. An added VIP carries a finite valid lifetime (IFA_CACHEINFO), so that the
 * kernel itself removes it when no refresh comes: a SIGKILLed or SIGSTOPped daemon cannot leave
 * it behind for longer than that.
 */
static int vip_netlink(struct kha_vrrp *v, bool add, bool any_prefix)
{
	return vip_netlink_flags(v, add, any_prefix, add ? NLM_F_CREATE | NLM_F_EXCL : 0);
}

/* The VIP's lifetime again, every advert while master (and back if something removed it). */
static void vip_refresh(struct kha_vrrp *v)
{
	int r = vip_netlink_flags(v, true, false, NLM_F_CREATE | NLM_F_REPLACE);

	if (r < 0 && v->send_errors++ % 100 == 0)
		kha_warn("cannot refresh the virtual IP's lifetime", "vip=%s interface=%s error=%s",
			 KHA_LOGQ(v->vip_text), KHA_LOGQ(v->cfg.interface), KHA_LOGQ(strerror(-r)));
	guard_say(v, 'M');
}

static void vip_add(struct kha_vrrp *v)
{
	int r = vip_netlink(v, true, false);

	if (r == -EEXIST)
		r = 0;
	if (r < 0) {
		kha_error("cannot add the virtual IP", "vip=%s interface=%s error=\"%s\"",
			  KHA_LOGQ(v->vip_text), KHA_LOGQ(v->cfg.interface), strerror(-r));
		return;
	}
	v->vip_held = true;
	guard_say(v, 'M');
}

static void vip_del(struct kha_vrrp *v)
{
	int r = vip_netlink(v, false, false);

	if (r == -EADDRNOTAVAIL || r == -ENOENT || r == -ENODEV)
		r = 0;
	if (r < 0)
		kha_error("cannot remove the virtual IP", "vip=%s interface=%s error=\"%s\"",
			  KHA_LOGQ(v->vip_text), KHA_LOGQ(v->cfg.interface), strerror(-r));
	v->vip_held = false;
	guard_say(v, 'B');
}

/* ---- the guard ---- */

/*
 * A process forked at start that removes the VIP when the daemon can no longer do it: at once
 * when the daemon dies (SIGKILL, a crash: the pipe reaches EOF), and when the daemon holds the
 * VIP but has not refreshed it for a Master_Down_Interval (SIGSTOP, a hang), the time after
 * which the backups take over. The daemon writes one message per refresh. The VIP's kernel
 * lifetime is the second line of defence, for when both are frozen or killed together.
 */
struct guard_msg {
	char what;	   /* 'M': holding the VIP, 'B': not holding it */
	uint32_t limit_ms; /* the Master_Down_Interval of now */
};

static void guard_say(struct kha_vrrp *v, char what)
{
	struct guard_msg m = {
		.what = what,
		.limit_ms = (uint32_t)(kha_vrrp_master_down_us(v->cfg.priority,
							       v->cfg.adver_interval_us) /
				       1000),
	};

	if (v->guard_fd >= 0) /* non-blocking: a full pipe means the guard has a message */
		kha_ignore(write(v->guard_fd, &m, sizeof(m)));
}

/* one line on stderr without stdio: the guard is a fork of a process that may have threads */
static void guard_note(const char *a, const char *b, const char *c)
{
	kha_ignore(write(STDERR_FILENO, a, strlen(a)));
	kha_ignore(write(STDERR_FILENO, b, strlen(b)));
	kha_ignore(write(STDERR_FILENO, c, strlen(c)));
}

static void guard_remove(struct kha_vrrp *v, const char *why)
{
	int r = vip_netlink(v, false, false);

	if (r == 0)
		guard_note("level=warn msg=\"virtual IP removed by the guard\" reason=\"", why,
			   "\"\n");
}

static __attribute__((noreturn)) void guard_main(struct kha_vrrp *v, int rfd)
{
	struct guard_msg m;
	uint32_t limit_ms = 0;
	bool held = false;

	/*
	 * Nothing of the daemon but the pipe, and an rtnetlink socket of its own (sharing the
	 * daemon's would mix up their acknowledgements). The process has one thread here.
	 */
	close_range(3, (unsigned)rfd - 1, 0);
	close_range((unsigned)rfd + 1, ~0U, 0);
	v->nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
	if (!v->nl || mnl_socket_bind(v->nl, 0, MNL_SOCKET_AUTOPID) < 0)
		_exit(1);
	prctl(PR_SET_NAME, "kha-vip-guard");
	for (;;) {
		struct pollfd p = {.fd = rfd, .events = POLLIN};
		int n = poll(&p, 1, held ? (int)limit_ms : -1);
		ssize_t k;

		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0) {
			guard_remove(v, "the daemon stopped refreshing it (frozen?)");
			held = false;
			continue;
		}
		k = n < 0 ? -1 : read(rfd, &m, sizeof(m));
		if (k < 0 && errno == EINTR)
			continue;
		if (k != (ssize_t)sizeof(m))
			break; /* EOF: the daemon is gone */
		held = m.what == 'M';
		limit_ms = KHA_MAX(m.limit_ms, 1);
	}
	guard_remove(v, "the daemon died");
	_exit(0);
}

/* Forks the guard. Call it while the process has one thread (before the track thread). */
static int guard_start(struct kha_vrrp *v)
{
	int p[2];
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		int r = -errno;

		close(p[0]);
		close(p[1]);
		return r;
	}
	if (pid == 0) {
		close(p[1]);
		guard_main(v, p[0]);
	}
	close(p[0]);
	if (fcntl(p[1], F_SETFL, O_NONBLOCK) < 0) {
		close(p[1]);
		return -errno;
	}
	v->guard_fd = p[1];
	v->guard_pid = pid;
	return 0;
}

/* ---- sending ---- */

static int send_to(struct kha_vrrp *v, const uint8_t *msg, size_t len, uint32_t dst)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = dst};
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(struct in_pktinfo))];
	} control = {};
	struct iovec iov = {.iov_base = (void *)msg, .iov_len = len};
	struct msghdr mh = {.msg_name = &sin,
			    .msg_namelen = sizeof(sin),
			    .msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = control.buf,
			    .msg_controllen = sizeof(control.buf)};
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	struct in_pktinfo pi = {.ipi_ifindex = (int)v->ifindex};

	/* speak from the primary address, never from the VIP (which peers would not know) */
	pi.ipi_spec_dst.s_addr = v->primary;
	c->cmsg_level = IPPROTO_IP;
	c->cmsg_type = IP_PKTINFO;
	c->cmsg_len = CMSG_LEN(sizeof(pi));
	memcpy(CMSG_DATA(c), &pi, sizeof(pi));
	if (sendmsg(v->fd, &mh, MSG_DONTWAIT) < 0)
		return -errno;
	return 0;
}

static void send_advert(struct kha_vrrp *v, uint8_t priority)
{
	struct kha_vrrp_packet p = {.version = KHA_VRRP_VERSION,
				    .type = KHA_VRRP_TYPE_ADVERT,
				    .vrid = v->cfg.vrid,
				    .priority = priority,
				    .count = 1,
				    .max_adver_int_cs =
					    (uint16_t)(v->cfg.adver_interval_us / 10000)};
	uint8_t buf[KHA_VRRP_HDR_LEN + 4];
	char a[INET_ADDRSTRLEN];
	size_t ndst = v->cfg.npeers ? v->cfg.npeers : 1;

	p.addrs[0] = v->cfg.vip;
	for (size_t i = 0; i < ndst; i++) {
		uint32_t dst = v->cfg.npeers ? v->cfg.peers[i] : htonl(KHA_VRRP_GROUP);
		int n = kha_vrrp_encode(&p, v->primary, dst, buf, sizeof(buf));
		int r = n < 0 ? n : send_to(v, buf, (size_t)n, dst);

		if (r < 0) {
			if (v->send_errors++ % 100 == 0)
				kha_warn("cannot send an advertisement",
					 "to=%s error=\"%s\" errors=%llu", ntoa(dst, a, sizeof(a)),
					 strerror(-r), (unsigned long long)v->send_errors);
			continue;
		}
		v->adverts_sent++;
	}
	if (priority != KHA_VRRP_PRIO_STOP && v->vip_held)
		vip_refresh(v);
}

static void send_garps(struct kha_vrrp *v)
{
	struct sockaddr_ll sll = {.sll_family = AF_PACKET,
				  .sll_protocol = htons(ETH_P_ARP),
				  .sll_ifindex = (int)v->ifindex,
				  .sll_halen = 6};
	uint8_t frame[KHA_VRRP_GARP_LEN];

	memset(sll.sll_addr, 0xff, 6);
	if (kha_vrrp_garp_build(frame, sizeof(frame), v->mac, v->cfg.vip) < 0)
		return;
	for (unsigned i = 0; i < v->cfg.garp_count; i++) {
		if (sendto(v->arp_fd, frame, sizeof(frame), MSG_DONTWAIT, (struct sockaddr *)&sll,
			   sizeof(sll)) < 0) {
			kha_warn("cannot send a gratuitous ARP", "interface=%s error=\"%s\"",
				 KHA_LOGQ(v->cfg.interface), strerror(errno));
			return;
		}
		v->garps_sent++;
	}
}

static void on_garp_timer(struct kha_loop_source *src, void *userdata)
{
	struct kha_vrrp *v = userdata;

	(void)src;
	/* a second burst, as keepalived does: neighbours whose entry changed within their ARP
	 * locktime (1 s on Linux) ignored the first one */
	if (v->fsm.state == KHA_VRRP_STATE_MASTER && v->vip_held)
		send_garps(v);
}

/* ---- notify ---- */

static void notify(struct kha_vrrp *v, enum kha_vrrp_state from, enum kha_vrrp_state to)
{
	char e_state[32], e_prev[32], e_vrid[32], e_vip[64], e_if[48];
	const char *argv[] = {"/bin/sh", "-c", v->cfg.notify, NULL};
	const char *env[] = {e_state, e_prev, e_vrid, e_vip, e_if, NULL};
	struct kha_proc_spawn_opts o = {.argv = argv, .env_add = env};
	struct kha_diag d = {};
	struct kha_proc p;
	int r;

	if (!v->cfg.notify)
		return;
	snprintf(e_state, sizeof(e_state), "KHA_VIP_STATE=%s", kha_vrrp_state_name(to));
	snprintf(e_prev, sizeof(e_prev), "KHA_VIP_PREVIOUS_STATE=%s", kha_vrrp_state_name(from));
	snprintf(e_vrid, sizeof(e_vrid), "KHA_VIP_VRID=%u", v->cfg.vrid);
	snprintf(e_vip, sizeof(e_vip), "KHA_VIP_ADDRESS=%s", v->vip_text);
	snprintf(e_if, sizeof(e_if), "KHA_VIP_INTERFACE=%s", v->cfg.interface);
	r = kha_proc_spawn(&o, &p, &d);
	if (r < 0) {
		kha_warn("notify command failed to start", "error=%s", KHA_LOGQ(d.msg));
		return;
	}
	kha_proc_release(&p); /* reaped on SIGCHLD; it may outlive a state */
}

/* ---- the state machine's actions ---- */

static void rearm(struct kha_vrrp *v)
{
	uint64_t next = kha_vrrp_fsm_next_us(&v->fsm), now = kha_now_us();

	if (!next)
		kha_loop_timer_stop(v->timer);
	else
		kha_loop_timer_set(v->timer, next > now ? next - now : 0, 0);
}

static void perform(struct kha_vrrp *v, unsigned act, const char *why)
{
	char m[INET_ADDRSTRLEN];

	if (act & KHA_VRRP_ACT_ADVERT)
		send_advert(v, v->cfg.priority);
	if (act & KHA_VRRP_ACT_ADVERT_STOP)
		send_advert(v, KHA_VRRP_PRIO_STOP);
	if (act & KHA_VRRP_ACT_VIP_ADD) {
		vip_add(v);
		send_garps(v);
		if (v->cfg.garp_repeat_us)
			kha_loop_timer_set(v->garp_timer, v->cfg.garp_repeat_us, 0);
	}
	if ((act & KHA_VRRP_ACT_ANNOUNCE) && v->vip_held) {
		kha_info("another master heard: announcing the VIP again",
			 "vrid=%u vip=%s interface=%s", v->cfg.vrid, KHA_LOGQ(v->vip_text),
			 KHA_LOGQ(v->cfg.interface));
		send_garps(v);
	}
	if (act & KHA_VRRP_ACT_VIP_DEL) {
		kha_loop_timer_stop(v->garp_timer);
		vip_del(v);
	}
	if (act & KHA_VRRP_ACT_STATE) {
		enum kha_vrrp_state from = v->prev_state, to = v->fsm.state;

		v->transitions++;
		v->prev_state = to;
		if (to == KHA_VRRP_STATE_MASTER)
			v->became_master_wall_us = kha_wall_us();
		kha_log(to == KHA_VRRP_STATE_FAULT ? KHA_LOG_WARN : KHA_LOG_INFO, "state changed",
			"from=%s to=%s reason=\"%s\" vrid=%u vip=%s interface=%s master=%s",
			kha_vrrp_state_name(from), kha_vrrp_state_name(to), why, v->cfg.vrid,
			KHA_LOGQ(v->vip_text), KHA_LOGQ(v->cfg.interface),
			KHA_LOGQ(v->fsm.master ? ntoa(v->fsm.master, m, sizeof(m)) : "none"));
		notify(v, from, to);
	}
	rearm(v);
}

static void on_timer(struct kha_loop_source *src, void *userdata)
{
	struct kha_vrrp *v = userdata;
	enum kha_vrrp_state before = v->fsm.state;
	unsigned act;

	(void)src;
	act = kha_vrrp_fsm_tick(&v->fsm, kha_now_us());
	perform(v, act, before == KHA_VRRP_STATE_BACKUP ? "no advertisement from a master" : "");
}

/* ---- receiving ---- */

static void on_packet(struct kha_vrrp *v, const uint8_t *buf, size_t len)
{
	struct kha_vrrp_rx_rules rules = {.vrid = v->cfg.vrid,
					  .self = v->primary,
					  .peers = v->cfg.peers,
					  .npeers = v->cfg.npeers,
					  .addrs = &v->cfg.vip,
					  .naddrs = 1};
	struct kha_vrrp_ipv4 ip = {};
	struct kha_vrrp_packet p;
	enum kha_vrrp_drop why;
	char a[INET_ADDRSTRLEN];
	enum kha_vrrp_state before = v->fsm.state;
	unsigned act;
	int r;

	r = kha_vrrp_decode_ipv4(buf, len, &ip, &p);
	why = r < 0 ? kha_vrrp_drop_from_errno(r) : kha_vrrp_rx_check(&rules, &ip, &p);
	if (why != KHA_VRRP_ACCEPT) {
		/* our own multicast may loop back on some setups: not worth a word */
		if (why != KHA_VRRP_DROP_SELF && v->dropped[why] % 100 == 0)
			kha_log(why == KHA_VRRP_DROP_VRID ? KHA_LOG_DEBUG : KHA_LOG_WARN,
				"advertisement dropped", "reason=%s from=%s dropped=%llu",
				kha_vrrp_drop_name(why), ntoa(ip.src, a, sizeof(a)),
				(unsigned long long)v->dropped[why] + 1);
		v->dropped[why]++;
		return;
	}
	v->adverts_received++;
	if (p.priority == KHA_VRRP_PRIO_OWNER && v->fsm.cfg.priority == KHA_VRRP_PRIO_OWNER) {
		v->dropped[KHA_VRRP_DROP_OWNER]++;
		return;
	}
	act = kha_vrrp_fsm_advert(&v->fsm, kha_now_us(), ip.src, p.priority,
				  (uint64_t)p.max_adver_int_cs * 10000);
	perform(v, act,
		before == KHA_VRRP_STATE_MASTER ? "advertisement of a higher priority" : "");
}

static void on_readable(struct kha_loop_source *src, int fd, uint32_t events, void *userdata)
{
	struct kha_vrrp *v = userdata;
	uint8_t buf[2048];

	(void)src;
	(void)events;
	for (int i = 0; i < 64; i++) {
		ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR)
				kha_warn("receive failed", "error=\"%s\"", strerror(errno));
			return;
		}
		on_packet(v, buf, (size_t)n);
	}
}

/*
 * FAULT while the interface has no carrier (as keepalived: a master behind a cut cable must not
 * keep the VIP, or it would come back as a second master whose neighbours follow the other) or
 * while a health track fails; the Startup event again when both are fine.
 */
static void update_fault(struct kha_vrrp *v)
{
	bool fault = !v->link_up || !kha_http_tracks_all_up(v->tracks);

	if (fault && !v->faulted) {
		v->faulted = true;
		perform(v, kha_vrrp_fsm_fault(&v->fsm, kha_now_us()),
			!v->link_up ? "interface down" : "a health track fails");
	} else if (!fault && v->faulted) {
		v->faulted = false;
		perform(v, kha_vrrp_fsm_recover(&v->fsm, kha_now_us()),
			"interface and health tracks fine again");
	}
}

static int on_link_msg(const struct nlmsghdr *nlh, void *data)
{
	struct kha_vrrp *v = data;
	const struct ifinfomsg *ifi = mnl_nlmsg_get_payload(nlh);
	bool up;

	if (nlh->nlmsg_type != RTM_NEWLINK || ifi->ifi_index != (int)v->ifindex)
		return MNL_CB_OK;
	up = (ifi->ifi_flags & IFF_UP) && (ifi->ifi_flags & IFF_RUNNING);
	if (up != v->link_up) {
		kha_log(up ? KHA_LOG_INFO : KHA_LOG_WARN, up ? "interface up" : "interface down",
			"interface=%s", KHA_LOGQ(v->cfg.interface));
		v->link_up = up;
		if (!v->stopping)
			update_fault(v);
	}
	return MNL_CB_OK;
}

static void on_link_event(struct kha_loop_source *src, int fd, uint32_t events, void *userdata)
{
	struct kha_vrrp *v = userdata;
	char buf[8192];

	(void)src;
	(void)fd;
	(void)events;
	for (;;) {
		ssize_t n = mnl_socket_recvfrom(v->nl_link, buf, sizeof(buf));

		if (n <= 0)
			return; /* EAGAIN, or ENOBUFS (overrun): the next event tells the state */
		kha_ignore(mnl_cb_run(buf, (size_t)n, 0, 0, on_link_msg, v));
	}
}

/* ---- health tracks (lib/net/track.c: a thread of HTTP checks) ---- */

static void on_track_change(void *userdata, size_t i, bool up)
{
	struct kha_vrrp *v = userdata;

	(void)i;
	(void)up;
	if (!v->stopping)
		update_fault(v);
}

/* ---- metrics and admin endpoints ---- */

static void collect(FILE *out, void *userdata)
{
	const struct kha_vrrp *v = userdata;
	char lbl[128], l2[256], m[INET_ADDRSTRLEN];

	snprintf(lbl, sizeof(lbl), "interface=\"%s\",vrid=\"%u\"", v->cfg.interface, v->cfg.vrid);
	kha_metrics_write_header(out, "kha_vip_state",
				 "1 for the current VRRP state of this router, 0 for the others",
				 KHA_METRIC_GAUGE);
	for (int s = 0; s < KHA_VRRP_STATE__MAX; s++) {
		snprintf(l2, sizeof(l2), "%s,state=\"%s\"", lbl, kha_vrrp_state_name(s));
		kha_metrics_write_sample(out, "kha_vip_state", l2, (int)v->fsm.state == s);
	}
	kha_metrics_write_header(out, "kha_vip_is_master", "1 while this host holds the VIP",
				 KHA_METRIC_GAUGE);
	kha_metrics_write_sample(out, "kha_vip_is_master", lbl,
				 v->fsm.state == KHA_VRRP_STATE_MASTER);
	kha_metrics_write_header(out, "kha_vip_transitions_total", "VRRP state changes",
				 KHA_METRIC_COUNTER);
	kha_metrics_write_sample(out, "kha_vip_transitions_total", lbl, (double)v->transitions);
	kha_metrics_write_header(out, "kha_vip_adverts_sent_total", "Advertisements sent",
				 KHA_METRIC_COUNTER);
	kha_metrics_write_sample(out, "kha_vip_adverts_sent_total", lbl, (double)v->adverts_sent);
	kha_metrics_write_header(out, "kha_vip_adverts_received_total",
				 "Advertisements received and accepted", KHA_METRIC_COUNTER);
	kha_metrics_write_sample(out, "kha_vip_adverts_received_total", lbl,
				 (double)v->adverts_received);
	kha_metrics_write_header(out, "kha_vip_adverts_dropped_total",
				 "Received packets dropped, by reason (RFC 5798 7.1)",
				 KHA_METRIC_COUNTER);
	for (int w = 1; w < KHA_VRRP_DROP__MAX; w++) {
		snprintf(l2, sizeof(l2), "%s,reason=\"%s\"", lbl, kha_vrrp_drop_name(w));
		kha_metrics_write_sample(out, "kha_vip_adverts_dropped_total", l2,
					 (double)v->dropped[w]);
	}
	kha_metrics_write_header(out, "kha_vip_send_errors_total",
				 "Advertisements that could not be sent", KHA_METRIC_COUNTER);
	kha_metrics_write_sample(out, "kha_vip_send_errors_total", lbl, (double)v->send_errors);
	kha_metrics_write_header(out, "kha_vip_gratuitous_arps_total", "Gratuitous ARPs sent",
				 KHA_METRIC_COUNTER);
	kha_metrics_write_sample(out, "kha_vip_gratuitous_arps_total", lbl, (double)v->garps_sent);
	kha_metrics_write_header(out, "kha_vip_config_reloads_total",
				 "Configuration reloads on SIGHUP, by result", KHA_METRIC_COUNTER);
	snprintf(l2, sizeof(l2), "%s,result=\"ok\"", lbl);
	kha_metrics_write_sample(out, "kha_vip_config_reloads_total", l2, (double)v->reloads);
	snprintf(l2, sizeof(l2), "%s,result=\"failed\"", lbl);
	kha_metrics_write_sample(out, "kha_vip_config_reloads_total", l2,
				 (double)v->reload_failures);
	kha_metrics_write_header(out, "kha_vip_priority", "Configured priority", KHA_METRIC_GAUGE);
	kha_metrics_write_sample(out, "kha_vip_priority", lbl, v->cfg.priority);
	kha_metrics_write_header(out, "kha_vip_master_info",
				 "The master last heard (this host when master)", KHA_METRIC_GAUGE);
	if (v->fsm.master) {
		snprintf(l2, sizeof(l2), "%s,address=\"%s\"", lbl,
			 ntoa(v->fsm.master, m, sizeof(m)));
		kha_metrics_write_sample(out, "kha_vip_master_info", l2, 1);
	}
	kha_metrics_write_header(out, "kha_vip_master_priority",
				 "Priority of the master last heard (0: none)", KHA_METRIC_GAUGE);
	kha_metrics_write_sample(out, "kha_vip_master_priority", lbl, v->fsm.master_priority);
	if (v->cfg.ntracks) {
		char u[256];

		kha_metrics_write_header(out, "kha_vip_track_up", "1 while a health track passes",
					 KHA_METRIC_GAUGE);
		for (size_t i = 0; i < v->cfg.ntracks; i++) {
			snprintf(l2, sizeof(l2), "%s,url=\"%s\"", lbl,
				 kha_metrics_escape(u, sizeof(u),
						    kha_http_tracks_url(v->tracks, i)));
			kha_metrics_write_sample(out, "kha_vip_track_up", l2,
						 kha_http_tracks_up(v->tracks, i));
		}
	}
}

/* Writes s as a JSON string (URLs and commands are the only free text). */
static void json_str(FILE *out, const char *s)
{
	fputc('"', out);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(out, "\\%c", c);
		else if (c < 0x20)
			fprintf(out, "\\u%04x", c);
		else
			fputc(c, out);
	}
	fputc('"', out);
}

static void status_route(const struct kha_httpd_request *req, struct kha_httpd_response *resp,
			 void *userdata)
{
	const struct kha_vrrp *v = userdata;
	char m[INET_ADDRSTRLEN], p[INET_ADDRSTRLEN];

	(void)req;
	resp->content_type = "application/json";
	fprintf(resp->body,
		"{\"state\":\"%s\",\"interface\":\"%s\",\"vrid\":%u,\"vip\":\"%s\","
		"\"primary\":\"%s\",\"priority\":%u,\"preempt\":%s,\"advert_interval_ms\":%llu,"
		"\"master\":\"%s\",\"master_priority\":%u,\"master_advert_interval_ms\":%llu,"
		"\"holds_vip\":%s,\"transitions\":%llu,\"adverts_sent\":%llu,"
		"\"adverts_received\":%llu,\"tracks\":[",
		kha_vrrp_state_name(v->fsm.state), v->cfg.interface, v->cfg.vrid, v->vip_text,
		ntoa(v->primary, p, sizeof(p)), v->cfg.priority, v->cfg.preempt ? "true" : "false",
		(unsigned long long)(v->cfg.adver_interval_us / 1000),
		v->fsm.master ? ntoa(v->fsm.master, m, sizeof(m)) : "", v->fsm.master_priority,
		(unsigned long long)(v->fsm.master_adver_interval_us / 1000),
		v->vip_held ? "true" : "false", (unsigned long long)v->transitions,
		(unsigned long long)v->adverts_sent, (unsigned long long)v->adverts_received);
	for (size_t i = 0; i < v->cfg.ntracks; i++) {
		fprintf(resp->body, "%s{\"url\":", i ? "," : "");
		json_str(resp->body, kha_http_tracks_url(v->tracks, i));
		fprintf(resp->body, ",\"up\":%s,\"detail\":",
			kha_http_tracks_up(v->tracks, i) ? "true" : "false");
		json_str(resp->body, kha_http_tracks_detail(v->tracks, i));
		fputc('}', resp->body);
	}
	fputs("]}\n", resp->body);
}

static bool ready(void *userdata, char *reason, size_t size)
{
	const struct kha_vrrp *v = userdata;

	if (v->fsm.state == KHA_VRRP_STATE_MASTER || v->fsm.state == KHA_VRRP_STATE_BACKUP)
		return true;
	snprintf(reason, size, "state %s", kha_vrrp_state_name(v->fsm.state));
	return false;
}

/* ---- lifecycle ---- */

static int open_sockets(struct kha_vrrp *v, struct kha_diag *d)
{
	const char *ifname = v->cfg.interface;
	int zero = 0, ttl = KHA_VRRP_TTL;
	struct ip_mreqn mr = {.imr_ifindex = (int)v->ifindex};

	v->fd = socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, KHA_VRRP_PROTO);
	if (v->fd < 0)
		return kha_diag_set(d, errno, "raw VRRP socket: %s%s", strerror(errno),
				    errno == EPERM ? " (needs CAP_NET_RAW)" : "");
	if (setsockopt(v->fd, SOL_SOCKET, SO_BINDTODEVICE, ifname, (socklen_t)strlen(ifname) + 1) <
		    0 ||
	    setsockopt(v->fd, IPPROTO_IP, IP_TTL, &ttl, sizeof(ttl)) < 0 ||
	    setsockopt(v->fd, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof(ttl)) < 0 ||
	    setsockopt(v->fd, IPPROTO_IP, IP_MULTICAST_LOOP, &zero, sizeof(zero)) < 0 ||
	    setsockopt(v->fd, IPPROTO_IP, IP_MULTICAST_IF, &mr, sizeof(mr)) < 0)
		return kha_diag_set(d, errno, "raw VRRP socket on %s: %s", ifname, strerror(errno));
	if (!v->cfg.npeers) {
		mr.imr_multiaddr.s_addr = htonl(KHA_VRRP_GROUP);
		if (setsockopt(v->fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mr, sizeof(mr)) < 0)
			return kha_diag_set(d, errno, "join 224.0.0.18 on %s: %s", ifname,
					    strerror(errno));
	}
	v->arp_fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
	if (v->arp_fd < 0)
		return kha_diag_set(d, errno, "packet socket for gratuitous ARP: %s",
				    strerror(errno));
	v->nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
	if (!v->nl || mnl_socket_bind(v->nl, 0, MNL_SOCKET_AUTOPID) < 0)
		return kha_diag_set(d, errno, "rtnetlink socket: %s", strerror(errno));
	v->nl_link = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (!v->nl_link || mnl_socket_bind(v->nl_link, RTMGRP_LINK, MNL_SOCKET_AUTOPID) < 0)
		return kha_diag_set(d, errno, "rtnetlink socket: %s", strerror(errno));
	return 0;
}

int kha_vrrp_new(struct kha_vrrp_config *cfg, struct kha_diag *d, struct kha_vrrp **ret)
{
	struct kha_vrrp *v = calloc(1, sizeof(*v));
	struct kha_vrrp_fsm_config fc;
	char a[INET_ADDRSTRLEN];
	bool stale = false;
	int r;

	if (!v)
		return kha_diag_set(d, ENOMEM, "out of memory");
	v->cfg = *cfg;
	/* the owned strings move over */
	memset(cfg->track_urls, 0, sizeof(cfg->track_urls));
	cfg->ntracks = 0;
	cfg->notify = NULL;
	v->fd = -1;
	v->arp_fd = -1;
	v->guard_fd = -1;
	v->vip_lifetime_s = vip_lifetime(v);
	snprintf(v->vip_text, sizeof(v->vip_text), "%s/%u", ntoa(v->cfg.vip, a, sizeof(a)),
		 v->cfg.prefix);
	/* a label marks the address as ours (ip addr shows it; a restart recognises it) */
	if (strlen(v->cfg.interface) + 4 < sizeof(v->label))
		snprintf(v->label, sizeof(v->label), "%s:kha", v->cfg.interface);
	else
		snprintf(v->label, sizeof(v->label), "%s", v->cfg.interface);
	r = inspect_interface(v, &stale, d);
	if (r == 0)
		r = open_sockets(v, d);
	if (r < 0)
		goto fail;
	if (stale) {
		/* a previous run was killed while master: never hold the VIP as a backup */
		r = vip_netlink(v, false, true);
		if (r < 0 && r != -EADDRNOTAVAIL) {
			kha_diag_set(d, r, "cannot remove the VIP %s left by a previous run: %s%s",
				     v->vip_text, strerror(-r),
				     r == -EPERM ? " (needs CAP_NET_ADMIN)" : "");
			goto fail;
		}
		kha_info("removed the virtual IP left by a previous run", "vip=%s interface=%s",
			 KHA_LOGQ(v->vip_text), KHA_LOGQ(v->cfg.interface));
	}
	fc = (struct kha_vrrp_fsm_config){.priority = v->cfg.priority,
					  .adver_interval_us = v->cfg.adver_interval_us,
					  .preempt = v->cfg.preempt,
					  .primary = v->primary};
	kha_vrrp_fsm_init(&v->fsm, &fc);
	v->prev_state = v->fsm.state;
	r = kha_loop_new(&v->loop);
	if (r < 0) {
		kha_diag_set(d, r, "event loop: %s", strerror(-r));
		goto fail;
	}
	{
		struct kha_http_tracks_config tc = {.urls = (const char *const *)v->cfg.track_urls,
						    .n = v->cfg.ntracks,
						    .interval_us = v->cfg.track_interval_us,
						    .timeout_us = v->cfg.track_timeout_us,
						    .fall = v->cfg.track_fall,
						    .rise = v->cfg.track_rise};

		r = kha_http_tracks_new(v->loop, &tc, on_track_change, v, &v->tracks);
	}
	if (r == 0)
		r = kha_loop_add_timer(v->loop, 0, 0, on_timer, v, &v->timer);
	if (r == 0) {
		kha_loop_timer_stop(v->timer);
		r = kha_loop_add_timer(v->loop, 0, 0, on_garp_timer, v, &v->garp_timer);
	}
	if (r == 0) {
		kha_loop_timer_stop(v->garp_timer);
		r = kha_loop_add_io(v->loop, v->fd, EPOLLIN, 0, on_readable, v, NULL);
	}
	if (r == 0)
		r = kha_loop_add_io(v->loop, mnl_socket_get_fd(v->nl_link), EPOLLIN, 0,
				    on_link_event, v, NULL);
	if (r < 0) {
		kha_diag_set(d, r, "event loop: %s", strerror(-r));
		goto fail;
	}
	if (v->cfg.metrics_addr[0]) {
		r = kha_httpd_admin_new(v->loop, v->cfg.metrics_addr, collect, status_route, ready,
					v, &v->metrics, &v->httpd, d);
		if (r < 0)
			goto fail;
	}
	*ret = v;
	return 0;
fail:
	kha_vrrp_free(v);
	return r;
}

void kha_vrrp_set_reload(struct kha_vrrp *v, kha_vrrp_reload_fn fn, void *userdata)
{
	v->reload_fn = fn;
	v->reload_userdata = userdata;
}

static bool tracks_equal(const struct kha_vrrp_config *a, const struct kha_vrrp_config *b)
{
	if (a->ntracks != b->ntracks || a->track_interval_us != b->track_interval_us ||
	    a->track_timeout_us != b->track_timeout_us || a->track_fall != b->track_fall ||
	    a->track_rise != b->track_rise)
		return false;
	for (size_t i = 0; i < a->ntracks; i++)
		if (strcmp(a->track_urls[i], b->track_urls[i]) != 0)
			return false;
	return true;
}

static void reload(struct kha_vrrp *v)
{
	struct kha_vrrp_config c;
	struct kha_diag d = {};
	char kept[128] = "", q[KHA_DIAG_MAX + 8];
	size_t n;

	kha_vrrp_config_init(&c);
	if (v->reload_fn(v->reload_userdata, &c, &d) < 0) {
		v->reload_failures++;
		kha_error("configuration not reloaded, keeping the running one", "error=%s",
			  kha_log_quote(q, sizeof(q), d.msg));
		kha_vrrp_config_release(&c);
		return;
	}
#define KEPT(cond, name)                                                   \
	do {                                                               \
		if (cond) {                                                \
			n = strlen(kept);                                  \
			snprintf(kept + n, sizeof(kept) - n, " %s", name); \
		}                                                          \
	} while (0)
	KEPT(strcmp(c.interface, v->cfg.interface) != 0, "interface");
	KEPT(c.vip != v->cfg.vip || c.prefix != v->cfg.prefix, "vip");
	KEPT(c.vrid != v->cfg.vrid, "vrid");
	KEPT(c.npeers != v->cfg.npeers ||
		     memcmp(c.peers, v->cfg.peers, c.npeers * sizeof(c.peers[0])) != 0,
	     "peer");
	KEPT(!tracks_equal(&c, &v->cfg), "track");
	KEPT(strcmp(c.metrics_addr, v->cfg.metrics_addr) != 0, "metrics-addr");
#undef KEPT
	if (kept[0])
		kha_warn("configuration keys not applied until a restart", "keys=\"%s\"", kept + 1);
	/* what applies now */
	v->cfg.priority = c.priority;
	v->cfg.preempt = c.preempt;
	v->cfg.adver_interval_us = c.adver_interval_us;
	v->vip_lifetime_s = vip_lifetime(v);
	v->cfg.garp_count = c.garp_count;
	v->cfg.garp_repeat_us = c.garp_repeat_us;
	free(v->cfg.notify);
	v->cfg.notify = c.notify;
	c.notify = NULL;
	v->fsm.cfg.priority = c.priority;
	v->fsm.cfg.preempt = c.preempt;
	v->fsm.cfg.adver_interval_us = c.adver_interval_us;
	kha_vrrp_config_release(&c);
	v->reloads++;
	kha_info("configuration reloaded", "priority=%u preempt=%s advert_interval_ms=%llu",
		 v->cfg.priority, v->cfg.preempt ? "true" : "false",
		 (unsigned long long)(v->cfg.adver_interval_us / 1000));
}

static void on_signal(struct kha_loop_source *src, int signo, void *userdata)
{
	struct kha_vrrp *v = userdata;
	unsigned act;

	(void)src;
	if (signo == SIGCHLD) {
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
		return;
	}
	if (signo == SIGHUP) {
		if (v->reload_fn)
			reload(v);
		else
			kha_warn("SIGHUP ignored: no configuration to read again", "%s", "");
		return;
	}
	kha_info("stopping", "signal=%s state=%s", signo == SIGTERM ? "SIGTERM" : "SIGINT",
		 kha_vrrp_state_name(v->fsm.state));
	v->stopping = true;
	kha_http_tracks_stop(v->tracks);
	act = kha_vrrp_fsm_stop(&v->fsm, kha_now_us());
	perform(v, act, "shutdown");
	kha_loop_quit(v->loop, 0);
}

int kha_vrrp_run(struct kha_vrrp *v)
{
	static const int sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGCHLD};
	char a[INET_ADDRSTRLEN];
	int r;

	r = kha_loop_add_signals(v->loop, sigs, KHA_ARRAY_SIZE(sigs), on_signal, v);
	if (r < 0)
		return r;
	/* with SIGTERM, SIGINT and SIGHUP blocked, inherited: the guard waits for our word */
	r = guard_start(v);
	if (r < 0)
		return r;
	/* threads only after the fork */
	r = kha_http_tracks_start(v->tracks);
	if (r < 0)
		return r;
	kha_info("started",
		 "vrid=%u vip=%s interface=%s primary=%s priority=%u advert_interval_ms=%llu "
		 "preempt=%s mode=%s master_down_ms=%.1f",
		 v->cfg.vrid, KHA_LOGQ(v->vip_text), KHA_LOGQ(v->cfg.interface),
		 ntoa(v->primary, a, sizeof(a)), v->cfg.priority,
		 (unsigned long long)(v->cfg.adver_interval_us / 1000),
		 v->cfg.preempt ? "true" : "false", v->cfg.npeers ? "unicast" : "multicast",
		 (double)kha_vrrp_master_down_us(v->cfg.priority, v->cfg.adver_interval_us) / 1e3);
	perform(v, kha_vrrp_fsm_start(&v->fsm, kha_now_us()), "startup");
	if (!v->link_up)
		kha_warn("interface down", "interface=%s", KHA_LOGQ(v->cfg.interface));
	update_fault(v);
	r = kha_loop_run(v->loop);
	/* the VIP never outlives a clean stop */
	if (v->vip_held)
		vip_del(v);
	return r;
}

void kha_vrrp_free(struct kha_vrrp *v)
{
	if (!v)
		return;
	kha_http_tracks_free(v->tracks);
	kha_httpd_free(v->httpd);
	kha_loop_free(v->loop);
	kha_metrics_free(v->metrics);
	if (v->nl)
		mnl_socket_close(v->nl);
	if (v->nl_link)
		mnl_socket_close(v->nl_link);
	if (v->fd >= 0)
		close(v->fd);
	if (v->arp_fd >= 0)
		close(v->arp_fd);
	if (v->guard_fd >= 0) {
		close(v->guard_fd); /* EOF: the guard makes sure the VIP is gone, then exits */
		kha_ignore(waitpid(v->guard_pid, NULL, 0));
	}
	kha_vrrp_config_release(&v->cfg);
	free(v);
}
