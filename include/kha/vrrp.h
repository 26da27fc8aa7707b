/* SPDX-License-Identifier: MIT */
/*
 * VRRP version 3 for IPv4 (RFC 5798): a floating virtual IP shared by two or three hosts.
 *
 * Three layers, each usable alone:
 *   packet   encode/decode of advertisements (RFC 5798 5.1) and their checksum over the IPv4
 *            pseudo-header (5.2.8), the receive checks of 7.1, and the gratuitous ARP frame.
 *            Pure functions: the fuzz target and the unit tests drive them.
 *   fsm      the Initialize/Backup/Master state machine of 6.4 (plus a Fault state for failing
 *            health tracks), clock-injected: every input takes `now` and returns the actions the
 *            caller must perform; deadlines are absolute kha_now_us() values. No I/O, no clock.
 *   router   the daemon: a raw IPPROTO_VRRP socket bound to the interface, the VIP added and
 *            removed over rtnetlink, gratuitous ARPs over AF_PACKET, metrics and admin endpoints,
 *            all on one kha_loop.
 *
 * Addresses are IPv4 in network byte order (uint32_t, as in struct in_addr) unless a name says
 * otherwise. Times are microseconds.
 */
#ifndef KHA_VRRP_H
#define KHA_VRRP_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

#include "kha/common.h"
#include "kha/diag.h"

#define KHA_VRRP_PROTO		 112	     /* IPPROTO_VRRP */
#define KHA_VRRP_GROUP		 0xe0000012u /* 224.0.0.18, host byte order */
#define KHA_VRRP_VERSION	 3
#define KHA_VRRP_TYPE_ADVERT	 1
#define KHA_VRRP_TTL		 255
#define KHA_VRRP_HDR_LEN	 8  /* fixed part of an advertisement */
#define KHA_VRRP_MAX_ADDRS	 20 /* addresses kept by the decoder (the wire allows 255) */
#define KHA_VRRP_PRIO_STOP	 0  /* "the master stops": backups take over after Skew_Time */
#define KHA_VRRP_PRIO_OWNER	 255
#define KHA_VRRP_MAX_INTERVAL_CS 4095 /* 12 bits of centiseconds: 40.95 s */
#define KHA_VRRP_GARP_LEN	 42   /* Ethernet header + ARP for IPv4 */

/* ---- packet ---- */

struct kha_vrrp_packet {
	uint8_t version;		    /* 3 */
	uint8_t type;			    /* 1: advertisement */
	uint8_t vrid;			    /* 1..255 */
	uint8_t priority;		    /* 0 stop, 1..254 backup, 255 owner */
	uint8_t count;			    /* Count IPvX Addr, as on the wire */
	uint16_t max_adver_int_cs;	    /* Max Advertise Interval, centiseconds (12 bits) */
	uint16_t checksum;		    /* as received (decode) */
	uint32_t addrs[KHA_VRRP_MAX_ADDRS]; /* the first min(count, MAX) addresses */
};

/* The IPv4 header fields a receiver checks. */
struct kha_vrrp_ipv4 {
	uint32_t src, dst;
	uint8_t ttl;
};

/*
 * The RFC 1071 checksum of a VRRP message (len bytes, its checksum field included as it is)
 * with the IPv4 pseudo-header (src, dst, 0, 112, len). Over a message whose checksum field
 * holds the right value the result is 0.
 */
uint16_t kha_vrrp_checksum(const uint8_t *msg, size_t len, uint32_t src, uint32_t dst);

/*
 * Writes the advertisement p (version, type, vrid, priority, max_adver_int_cs and count
 * addresses from p->addrs; p->checksum is ignored) into buf with its checksum for the pseudo-
 * header (src, dst). Returns the length written, -EINVAL (count > KHA_VRRP_MAX_ADDRS, interval
 * beyond 12 bits) or -ENOBUFS (size too small).
 */
int kha_vrrp_encode(const struct kha_vrrp_packet *p, uint32_t src, uint32_t dst, uint8_t *buf,
		    size_t size) KHA_WUR;

/*
 * Decodes a VRRP message (no IP header) received from src to dst. Returns 0, or -EMSGSIZE
 * (shorter than its header or its address list), -EPROTONOSUPPORT (version is not 3), -EBADMSG
 * (type is not 1, max advert interval 0) or -EILSEQ (bad checksum). Pure function.
 */
int kha_vrrp_decode(const uint8_t *buf, size_t len, uint32_t src, uint32_t dst,
		    struct kha_vrrp_packet *ret) KHA_WUR;

/*
 * Decodes a whole IPv4 datagram as a raw socket hands it over: the IPv4 header (version 4, a
 * sane header length, total length within len, protocol 112, not a fragment), then the VRRP
 * message as kha_vrrp_decode does. ret_ip receives the source, destination and TTL whenever the
 * IPv4 header was readable, even when the VRRP part is bad. Returns 0 or the errors above.
 */
int kha_vrrp_decode_ipv4(const uint8_t *buf, size_t len, struct kha_vrrp_ipv4 *ret_ip,
			 struct kha_vrrp_packet *ret) KHA_WUR;

/* Why a received packet was dropped (RFC 5798 7.1), for logs and metrics. */
enum kha_vrrp_drop {
	KHA_VRRP_ACCEPT,
	KHA_VRRP_DROP_MALFORMED, /* truncated, bad IPv4 header, wrong type */
	KHA_VRRP_DROP_VERSION,	 /* not VRRP version 3 */
	KHA_VRRP_DROP_CHECKSUM,
	KHA_VRRP_DROP_TTL,   /* TTL is not 255: it crossed a router */
	KHA_VRRP_DROP_VRID,  /* another virtual router on the segment */
	KHA_VRRP_DROP_OWNER, /* sent to us while we are the address owner: never here */
	KHA_VRRP_DROP_SELF,  /* our own advertisement */
	KHA_VRRP_DROP_PEER,  /* unicast mode: the source is not one of the peers */
	KHA_VRRP_DROP_ADDRS, /* the address list differs from ours (logged, then dropped) */
	KHA_VRRP_DROP__MAX,
};

/* "malformed", "version", "checksum", "ttl", "vrid", "owner", "self", "peer", "addresses". */
const char *kha_vrrp_drop_name(enum kha_vrrp_drop why);
/* Maps a kha_vrrp_decode error to a drop reason. */
enum kha_vrrp_drop kha_vrrp_drop_from_errno(int err);

/* What a receiver checks beyond decoding. */
struct kha_vrrp_rx_rules {
	uint8_t vrid;
	uint32_t self;	       /* our primary address: our own packets are dropped */
	const uint32_t *peers; /* unicast peers (borrowed); npeers 0 = any source */
	size_t npeers;
	const uint32_t *addrs; /* the virtual addresses configured (borrowed) */
	size_t naddrs;
};

/*
 * The receive checks of RFC 5798 7.1 on a packet decoded with kha_vrrp_decode_ipv4: TTL 255,
 * our VRID, not our own, from a peer when peers are set, the same address list. Returns
 * KHA_VRRP_ACCEPT or the reason to drop it.
 */
enum kha_vrrp_drop kha_vrrp_rx_check(const struct kha_vrrp_rx_rules *rules,
				     const struct kha_vrrp_ipv4 *ip,
				     const struct kha_vrrp_packet *p);

/*
 * Writes a gratuitous ARP (a broadcast ARP request for ip from ip, as RFC 5227 announces) from
 * the interface whose hardware address is mac into buf. Returns KHA_VRRP_GARP_LEN or -ENOBUFS.
 */
int kha_vrrp_garp_build(uint8_t *buf, size_t size, const uint8_t mac[6], uint32_t ip) KHA_WUR;

/*
 * Parses "10.0.0.100/24" (or "10.0.0.100", which means /32) into an address (network order)
 * and a prefix length. Returns 0 or -EINVAL, with d naming the problem.
 */
int kha_vrrp_parse_prefix(const char *s, uint32_t *ret_addr, unsigned *ret_prefix,
			  struct kha_diag *d) KHA_WUR;

/* ---- state machine ---- */

enum kha_vrrp_state {
	KHA_VRRP_STATE_INIT, /* Initialize: not started, or stopped */
	KHA_VRRP_STATE_BACKUP,
	KHA_VRRP_STATE_MASTER,
	KHA_VRRP_STATE_FAULT, /* a health track fails: out of the election, VIP removed */
	KHA_VRRP_STATE__MAX,
};

/* Actions returned by the fsm functions, to perform in this order. */
enum kha_vrrp_action {
	KHA_VRRP_ACT_ADVERT = 1u << 0,	    /* send an advertisement at our priority */
	KHA_VRRP_ACT_ADVERT_STOP = 1u << 1, /* send an advertisement at priority 0 */
	KHA_VRRP_ACT_VIP_ADD = 1u << 2,	    /* add the VIP and announce it (gratuitous ARPs) */
	KHA_VRRP_ACT_VIP_DEL = 1u << 3,	    /* remove the VIP */
	KHA_VRRP_ACT_STATE = 1u << 4,	    /* the state changed (log, count, notify) */
	KHA_VRRP_ACT_ANNOUNCE = 1u << 5,    /* gratuitous ARPs again for the VIP we hold */
};

struct kha_vrrp_fsm_config {
	uint8_t priority;	    /* 1..255 */
	uint64_t adver_interval_us; /* Advertisement_Interval, a multiple of 10 ms */
	bool preempt;		    /* Preempt_Mode (RFC default: true) */
	uint32_t primary;	    /* our primary address: breaks priority ties */
};

struct kha_vrrp_fsm {
	struct kha_vrrp_fsm_config cfg;
	enum kha_vrrp_state state;
	uint64_t master_adver_interval_us; /* the master's, learnt in Backup */
	uint64_t down_at_us;		   /* Master_Down_Timer deadline; 0: not running */
	uint64_t adver_at_us;		   /* Adver_Timer deadline; 0: not running */
	uint32_t master;		   /* the master last seen (ourselves as master); 0: none */
	uint8_t master_priority;	   /* its priority */
};

/* Skew_Time = ((256 - priority) * master_adver_interval) / 256. */
uint64_t kha_vrrp_skew_us(uint8_t priority, uint64_t master_adver_interval_us);
/* Master_Down_Interval = 3 * master_adver_interval + Skew_Time. */
uint64_t kha_vrrp_master_down_us(uint8_t priority, uint64_t master_adver_interval_us);

/* Sets up a machine in Initialize. cfg is copied. */
void kha_vrrp_fsm_init(struct kha_vrrp_fsm *f, const struct kha_vrrp_fsm_config *cfg);
/* The Startup event: to Backup (Master at once for the address owner, priority 255). */
unsigned kha_vrrp_fsm_start(struct kha_vrrp_fsm *f, uint64_t now);
/* The Shutdown event: to Initialize; a master says so with a priority-0 advert, drops the VIP. */
unsigned kha_vrrp_fsm_stop(struct kha_vrrp_fsm *f, uint64_t now);
/*
 * An accepted advertisement from src with priority and max advert interval (µs). Returns the
 * actions (Backup: restarts Master_Down_Timer, or Skew_Time on priority 0; Master: yields to a
 * higher priority or an equal one from a higher address, answers a priority 0 at once, and
 * answers a lower one (a second master: a healed partition) with an advert and gratuitous
 * ARPs at once, as keepalived does, so that neighbours which followed the other master's ARPs
 * come back).
 */
unsigned kha_vrrp_fsm_advert(struct kha_vrrp_fsm *f, uint64_t now, uint32_t src, uint8_t priority,
			     uint64_t interval_us);
/* Fires the timers whose deadline is <= now. */
unsigned kha_vrrp_fsm_tick(struct kha_vrrp_fsm *f, uint64_t now);
/* A health track failed: to Fault (a master first advertises priority 0, drops the VIP). */
unsigned kha_vrrp_fsm_fault(struct kha_vrrp_fsm *f, uint64_t now);
/* The tracks pass again: from Fault, the Startup event. No-op in any other state. */
unsigned kha_vrrp_fsm_recover(struct kha_vrrp_fsm *f, uint64_t now);
/* The earliest running deadline (kha_now_us() scale), 0 when no timer runs. */
uint64_t kha_vrrp_fsm_next_us(const struct kha_vrrp_fsm *f);
/* "INIT", "BACKUP", "MASTER", "FAULT". */
const char *kha_vrrp_state_name(enum kha_vrrp_state s);

/* ---- router (the daemon) ---- */

#define KHA_VRRP_MAX_PEERS  8
#define KHA_VRRP_MAX_TRACKS 4

struct kha_vrrp_config {
	char interface[16];
	uint32_t vip;			    /* network order */
	unsigned prefix;		    /* 0..32 */
	uint8_t vrid;			    /* 1..255 */
	uint8_t priority;		    /* 1..254 */
	uint64_t adver_interval_us;	    /* default 1 s */
	bool preempt;			    /* default true */
	uint32_t peers[KHA_VRRP_MAX_PEERS]; /* unicast instead of multicast when npeers > 0 */
	size_t npeers;
	unsigned garp_count;	 /* gratuitous ARPs per burst (default 5) */
	uint64_t garp_repeat_us; /* a second burst this long after takeover (5 s; 0: none) */
	char *track_urls[KHA_VRRP_MAX_TRACKS]; /* owned; HTTP GET, 200 = healthy */
	size_t ntracks;
	uint64_t track_interval_us; /* default 1 s */
	uint64_t track_timeout_us;  /* default 1 s */
	unsigned track_fall;	    /* consecutive failures to enter Fault (default 3) */
	unsigned track_rise;	    /* consecutive successes to leave it (default 2) */
	char *notify;		    /* owned; run with /bin/sh -c on every state change */
	char metrics_addr[64];	    /* "" = off; default 127.0.0.1:9444 */
};

/* Fills the defaults. */
void kha_vrrp_config_init(struct kha_vrrp_config *c);
/* Frees what the config owns (tracks, notify); the struct may be reused after init. */
void kha_vrrp_config_release(struct kha_vrrp_config *c);

struct kha_vrrp;

/*
 * Creates the router for cfg (copied; its owned strings are taken over and cleared in cfg):
 * checks the interface (-ENODEV), finds its primary IPv4 address (-EADDRNOTAVAIL) and MAC,
 * opens the sockets (-EPERM without CAP_NET_RAW), removes the VIP if a previous run left it,
 * binds the admin endpoints. Nothing is sent yet. Returns 0 or a negative errno with d set.
 */
int kha_vrrp_new(struct kha_vrrp_config *cfg, struct kha_diag *d, struct kha_vrrp **ret) KHA_WUR;
/*
 * Runs until SIGTERM/SIGINT: then, as master, advertises priority 0 and removes the VIP.
 * Returns 0 or a negative errno (the socket failed).
 */
int kha_vrrp_run(struct kha_vrrp *v) KHA_WUR;
void kha_vrrp_free(struct kha_vrrp *v);

/*
 * Reloading (SIGHUP): fn fills cfg (initialised by kha_vrrp_config_init) with the configuration
 * read again as at start (the config file, then the command line); 0 or -errno with d set.
 * Priority, preemption, the advertisement interval, the notify command and the gratuitous ARP
 * settings apply at once (a master advertises its new priority at its next advertisement, so
 * lowering it below a backup's moves the VIP there when that backup preempts); the interface,
 * VIP, VRID, peers, health tracks and metrics address need a restart and are kept, with a
 * warning. An invalid configuration changes nothing. Without fn, SIGHUP is ignored.
 */
typedef int (*kha_vrrp_reload_fn)(void *userdata, struct kha_vrrp_config *cfg, struct kha_diag *d);
void kha_vrrp_set_reload(struct kha_vrrp *v, kha_vrrp_reload_fn fn, void *userdata);

#endif
