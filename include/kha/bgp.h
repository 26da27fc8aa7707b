/* SPDX-License-Identifier: MIT */
/*
 * BGP-4 (RFC 4271) for kha bgp: every master announces the apiserver's service address, the
 * routers spread connections over all live masters (ECMP), and BFD (RFC 5880/5881) makes a dead
 * master's path go in a fraction of a second.
 *
 * kha is a speaker that announces and never learns: it takes no routes, so whatever a peer sends
 * is checked for well-formedness (a NOTIFICATION with the RFC's code on any error) and dropped.
 *
 * Layers, each usable alone (as lib/vrrp):
 *   message  encode/decode of OPEN with capabilities (RFC 5492: multiprotocol RFC 4760, 4-octet
 *            AS RFC 6793, route refresh RFC 2918), UPDATE (announce and withdraw, IPv4 by the
 *            classic NLRI, IPv6 by MP_REACH/MP_UNREACH with RFC 2545 next hops), NOTIFICATION,
 *            KEEPALIVE, ROUTE-REFRESH. Pure functions, driven by the fuzz target and unit tests.
 *   fsm      the session state machine of RFC 4271 8, clock-injected: every event takes `now` and
 *            returns the actions to perform; deadlines are absolute kha_now_us() values.
 *   bfd      RFC 5880 control packets and the session state machine (asynchronous mode).
 *   speaker  the daemon: TCP sessions (active and passive, TCP-MD5, GTSM), the BFD sockets, the
 *            service address on a local interface, health tracks, metrics, all on one kha_loop.
 *
 * Addresses are kept as struct kha_bgp_addr (family + 16 bytes in network order).
 */
#ifndef KHA_BGP_H
#define KHA_BGP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kha/common.h"
#include "kha/diag.h"

#define KHA_BGP_PORT		179
#define KHA_BGP_VERSION		4
#define KHA_BGP_HDR_LEN		19    /* marker 16, length 2, type 1 (RFC 4271 4.1) */
#define KHA_BGP_MAX_LEN		4096  /* RFC 4271 4.1 (no extended messages) */
#define KHA_BGP_OPEN_MIN	29    /* header + version, AS, hold, identifier, opt param len */
#define KHA_BGP_AS_TRANS	23456 /* RFC 6793: the 2-octet stand-in for a 4-octet AS */
#define KHA_BGP_AFI_IPV4	1
#define KHA_BGP_AFI_IPV6	2
#define KHA_BGP_SAFI_UNICAST	1
#define KHA_BGP_MAX_COMMUNITIES 16
/* RFC 8326: "routes tagged with it are about to be withdrawn: prefer another path" */
#define KHA_BGP_COMMUNITY_GRACEFUL_SHUTDOWN 0xffff0000u

enum kha_bgp_type {
	KHA_BGP_OPEN = 1,
	KHA_BGP_UPDATE = 2,
	KHA_BGP_NOTIFICATION = 3,
	KHA_BGP_KEEPALIVE = 4,
	KHA_BGP_ROUTE_REFRESH = 5, /* RFC 2918 */
};

/* NOTIFICATION error codes (RFC 4271 4.5) and the subcodes kha sends or names. */
enum kha_bgp_error {
	KHA_BGP_ERR_HEADER = 1,
	KHA_BGP_ERR_OPEN = 2,
	KHA_BGP_ERR_UPDATE = 3,
	KHA_BGP_ERR_HOLD = 4,
	KHA_BGP_ERR_FSM = 5,
	KHA_BGP_ERR_CEASE = 6,
	KHA_BGP_ERR_ROUTE_REFRESH = 7, /* RFC 7313 */
};
enum {
	/* Message Header Error */
	KHA_BGP_HDR_NOT_SYNC = 1,
	KHA_BGP_HDR_BAD_LENGTH = 2,
	KHA_BGP_HDR_BAD_TYPE = 3,
	/* OPEN Message Error */
	KHA_BGP_OPEN_BAD_VERSION = 1,
	KHA_BGP_OPEN_BAD_PEER_AS = 2,
	KHA_BGP_OPEN_BAD_ID = 3,
	KHA_BGP_OPEN_BAD_OPT_PARAM = 4,
	KHA_BGP_OPEN_BAD_HOLD = 6,
	KHA_BGP_OPEN_BAD_CAPABILITY = 7, /* RFC 5492 */
	/* UPDATE Message Error */
	KHA_BGP_UPD_MALFORMED_ATTRS = 1,
	KHA_BGP_UPD_UNKNOWN_WELL_KNOWN = 2,
	KHA_BGP_UPD_MISSING_WELL_KNOWN = 3,
	KHA_BGP_UPD_ATTR_FLAGS = 4,
	KHA_BGP_UPD_ATTR_LENGTH = 5,
	KHA_BGP_UPD_BAD_ORIGIN = 6,
	KHA_BGP_UPD_BAD_NEXT_HOP = 8,
	KHA_BGP_UPD_OPT_ATTR = 9,
	KHA_BGP_UPD_BAD_NETWORK = 10,
	KHA_BGP_UPD_MALFORMED_AS_PATH = 11,
	/* Finite State Machine Error (RFC 6608) */
	KHA_BGP_FSM_IN_OPENSENT = 1,
	KHA_BGP_FSM_IN_OPENCONFIRM = 2,
	KHA_BGP_FSM_IN_ESTABLISHED = 3,
	/* Cease (RFC 4486, RFC 9384) */
	KHA_BGP_CEASE_ADMIN_SHUTDOWN = 2,
	KHA_BGP_CEASE_PEER_DECONFIGURED = 3,
	KHA_BGP_CEASE_CONNECTION_REJECTED = 5,
	KHA_BGP_CEASE_COLLISION = 7,
	KHA_BGP_CEASE_BFD_DOWN = 10,
	/* ROUTE-REFRESH Message Error (RFC 7313) */
	KHA_BGP_RR_BAD_LENGTH = 1,
};

/* A NOTIFICATION: received, or to send when a message fails a check. */
struct kha_bgp_notify {
	uint8_t code, subcode;
	uint8_t data[32]; /* the first bytes of the data field */
	size_t data_len;  /* of data[] (at most sizeof(data)) */
};

/* "message header error/bad message length" etc., for logs. Both names are never NULL. */
const char *kha_bgp_error_name(uint8_t code);
const char *kha_bgp_suberror_name(uint8_t code, uint8_t subcode);

struct kha_bgp_addr {
	int family; /* AF_INET, AF_INET6; 0 = none */
	uint8_t a[16];
};

struct kha_bgp_prefix {
	struct kha_bgp_addr addr;
	uint8_t len; /* 0..32 or 0..128 */
};

/* An OPEN, decoded or to encode. */
struct kha_bgp_open {
	uint8_t version;
	uint32_t as;		 /* the 4-octet AS when the capability is there, else My AS */
	uint16_t my_as;		 /* the 2-octet field as on the wire (AS_TRANS for a large AS) */
	uint16_t hold_time;	 /* seconds */
	uint32_t id;		 /* BGP Identifier, network order */
	bool cap_as4;		 /* 4-octet AS capability (code 65) */
	bool cap_ipv4, cap_ipv6; /* multiprotocol (code 1): IPv4 / IPv6 unicast */
	bool cap_mp;		 /* any multiprotocol capability was present */
	bool cap_route_refresh;	 /* code 2 (or the pre-standard 128) */
	unsigned caps_unknown;	 /* other capabilities, ignored (RFC 5492 3) */
};

/* What a decoded UPDATE held (kha keeps none of it: for logs, counters and tests). */
struct kha_bgp_update {
	unsigned withdrawn, nlri;      /* IPv4 prefixes, classic fields */
	unsigned mp_reach, mp_unreach; /* prefixes in MP_REACH_NLRI / MP_UNREACH_NLRI */
	uint16_t mp_reach_afi, mp_unreach_afi;
	uint32_t attrs; /* bit n set: attribute type n (n < 32) was present */
	uint8_t origin;
	uint32_t med, local_pref;
	struct kha_bgp_addr next_hop; /* NEXT_HOP, or MP_REACH's (global) next hop */
	uint32_t communities[KHA_BGP_MAX_COMMUNITIES]; /* the first ones */
	size_t ncommunities;			       /* all of them */
	uint32_t first_as;			       /* first AS of AS_PATH; 0: empty */
	struct kha_bgp_prefix first;		       /* the first prefix announced */
	bool end_of_rib;			       /* an empty UPDATE (RFC 4724 2) */
};

/* One decoded message. */
struct kha_bgp_msg {
	uint8_t type;
	uint16_t len;
	union {
		struct kha_bgp_open open;
		struct kha_bgp_update update;
		struct kha_bgp_notify notification;
		struct {
			uint16_t afi;
			uint8_t safi;
		} refresh;
	};
};

/*
 * Frames a message in a receive buffer (RFC 4271 6.1): returns 0 while fewer than a header's or
 * a message's bytes are there, the message length when buf holds one whole message, or
 * -EBADMSG with ret_err set to the Message Header Error to send (marker not all ones, length
 * out of 19..4096 or too short for its type, unknown type).
 */
int kha_bgp_frame(const uint8_t *buf, size_t len, struct kha_bgp_notify *ret_err) KHA_WUR;

/*
 * Decodes one whole framed message (len as kha_bgp_frame returned). as4: the session speaks
 * 4-octet AS numbers in AS_PATH (both sides sent the capability). Returns 0 or -EBADMSG with
 * ret_err set to the NOTIFICATION RFC 4271 6.2/6.3 (and RFC 7313 for ROUTE-REFRESH) prescribes.
 * Pure function; an UPDATE is fully checked but not kept.
 */
int kha_bgp_decode(const uint8_t *buf, size_t len, bool as4, struct kha_bgp_msg *ret,
		   struct kha_bgp_notify *ret_err) KHA_WUR;

/* What a local speaker expects of a peer's OPEN. */
struct kha_bgp_open_rules {
	uint32_t peer_as;  /* 0: any */
	uint32_t local_id; /* ours, network order */
	bool ibgp;	   /* peer_as == our AS */
};

/*
 * The checks of RFC 4271 6.2 on a decoded OPEN: version 4, the configured peer AS, hold time 0
 * or >= 3 s, a non-zero identifier (and not ours on an iBGP session). Returns 0 or -EBADMSG with ret_err set.
 */
int kha_bgp_open_check(const struct kha_bgp_open *o, const struct kha_bgp_open_rules *rules,
		       struct kha_bgp_notify *ret_err) KHA_WUR;

/*
 * Encoders: each writes one whole message (header included) into buf and returns its length,
 * or -ENOBUFS (size too small) / -EINVAL (an argument the wire cannot carry).
 * kha_bgp_encode_open: version 4, hold, identifier, the My AS field (AS_TRANS for a 4-octet AS)
 * and the capabilities set in o (multiprotocol per family, route refresh, 4-octet AS).
 */
int kha_bgp_encode_open(const struct kha_bgp_open *o, uint8_t *buf, size_t size) KHA_WUR;
int kha_bgp_encode_keepalive(uint8_t *buf, size_t size) KHA_WUR;
int kha_bgp_encode_notification(const struct kha_bgp_notify *n, uint8_t *buf, size_t size) KHA_WUR;

/* Path attributes of an announcement. */
struct kha_bgp_attrs {
	uint32_t local_as;
	bool ebgp;		      /* AS_PATH = (local_as); iBGP: empty, with LOCAL_PREF */
	bool as4;		      /* the session negotiated 4-octet AS numbers */
	struct kha_bgp_addr next_hop; /* of the prefixes' family (RFC 2545 for IPv6) */
	bool has_med;
	uint32_t med;
	uint32_t local_pref; /* sent on iBGP only */
	uint32_t communities[KHA_BGP_MAX_COMMUNITIES];
	size_t ncommunities;
};

/*
 * An UPDATE announcing n prefixes of one family with attrs: IPv4 in the NLRI field with
 * NEXT_HOP, IPv6 in MP_REACH_NLRI. ORIGIN IGP; AS_PATH as attrs says (2-octet with AS_TRANS and
 * AS4_PATH when as4 is false and local_as does not fit). -EINVAL: mixed families, no next hop
 * of the prefixes' family.
 */
int kha_bgp_encode_announce(const struct kha_bgp_prefix *p, size_t n,
			    const struct kha_bgp_attrs *attrs, uint8_t *buf, size_t size) KHA_WUR;
/* An UPDATE withdrawing n prefixes of one family (IPv4: withdrawn routes; IPv6: MP_UNREACH). */
int kha_bgp_encode_withdraw(const struct kha_bgp_prefix *p, size_t n, uint8_t *buf,
			    size_t size) KHA_WUR;

/* Parses "10.0.0.100/32", "fd00::100/128" or a bare address (a host prefix). -EINVAL with d. */
int kha_bgp_parse_prefix(const char *s, struct kha_bgp_prefix *ret, struct kha_diag *d) KHA_WUR;
/* Parses an address of either family. -EINVAL with d. */
int kha_bgp_parse_addr(const char *s, struct kha_bgp_addr *ret, struct kha_diag *d) KHA_WUR;
/* Parses a community "65000:100", a well-known name ("graceful-shutdown", "no-export",
 * "no-advertise", "no-export-subconfed", "blackhole") or a 32-bit number. -EINVAL with d. */
int kha_bgp_parse_community(const char *s, uint32_t *ret, struct kha_diag *d) KHA_WUR;
/* "10.0.0.1", "fd00::1"; "" for none. Returns buf. */
const char *kha_bgp_addr_str(const struct kha_bgp_addr *a, char *buf, size_t size);
bool kha_bgp_addr_equal(const struct kha_bgp_addr *a, const struct kha_bgp_addr *b);

/* ---- session state machine (RFC 4271 8) ---- */

enum kha_bgp_state {
	KHA_BGP_IDLE,
	KHA_BGP_CONNECT,
	KHA_BGP_ACTIVE,
	KHA_BGP_OPENSENT,
	KHA_BGP_OPENCONFIRM,
	KHA_BGP_ESTABLISHED,
	KHA_BGP_STATE__MAX,
};

/* Actions returned by the fsm functions, to perform in this bit order. */
enum kha_bgp_action {
	KHA_BGP_ACT_SEND_NOTIFY = 1u << 0, /* send f->notify_out on the connection */
	KHA_BGP_ACT_CLOSE = 1u << 1,	   /* drop the TCP connection (and any attempt) */
	KHA_BGP_ACT_CONNECT = 1u << 2,	   /* start a TCP connection to the peer */
	KHA_BGP_ACT_SEND_OPEN = 1u << 3,
	KHA_BGP_ACT_SEND_KEEPALIVE = 1u << 4,
	KHA_BGP_ACT_ANNOUNCE = 1u << 5, /* send the whole Adj-RIB-Out (just Established) */
	KHA_BGP_ACT_STATE = 1u << 6,	/* the state changed (log, count) */
};

struct kha_bgp_fsm_config {
	uint16_t hold_time_s;	       /* proposed in our OPEN: 0 or >= 3 (default 90) */
	uint64_t keepalive_us;	       /* 0: a third of the negotiated hold time */
	uint64_t connect_retry_us;     /* first ConnectRetryTime (default 5 s) */
	uint64_t connect_retry_max_us; /* doubled on each failed attempt up to this (60 s) */
	uint64_t idle_hold_us;	       /* IdleHoldTime after a session error (default 1 s) */
	uint64_t idle_hold_max_us;     /* doubled on each error in a row up to this (60 s) */
	bool passive;		       /* never connect, only accept */
};

struct kha_bgp_fsm {
	struct kha_bgp_fsm_config cfg;
	enum kha_bgp_state state;
	bool started; /* ManualStart seen, no ManualStop since */
	uint64_t connect_retry_at_us, hold_at_us, keepalive_at_us, idle_hold_at_us; /* 0: off */
	uint64_t retry_us;     /* the current ConnectRetryTime */
	unsigned errors;       /* sessions ended by an error in a row (IdleHoldTime back-off) */
	uint64_t hold_us;      /* negotiated (0: no hold timer, no keepalives) */
	uint64_t keepalive_us; /* negotiated */
	struct kha_bgp_notify notify_out; /* for KHA_BGP_ACT_SEND_NOTIFY */
};

/* Sets up a machine in Idle, not started. cfg is copied. */
void kha_bgp_fsm_init(struct kha_bgp_fsm *f, const struct kha_bgp_fsm_config *cfg);
/* ManualStart (Event 1; Event 4 when passive): to Connect (connects) or Active (waits). */
unsigned kha_bgp_fsm_start(struct kha_bgp_fsm *f, uint64_t now);
/* ManualStop (Event 2): a Cease with subcode (Administrative Shutdown, Peer De-configured)
 * when a session is open, then Idle, not started. */
unsigned kha_bgp_fsm_stop(struct kha_bgp_fsm *f, uint64_t now, uint8_t cease_subcode);
/* Our connection attempt succeeded, or we accepted the peer's (Events 16/17). */
unsigned kha_bgp_fsm_tcp_up(struct kha_bgp_fsm *f, uint64_t now);
/*
 * Collision resolution (RFC 4271 6.8) kept the peer's new connection and closed ours: the
 * session starts again on it, in OpenSent (our OPEN is sent on the new connection).
 */
unsigned kha_bgp_fsm_tcp_replace(struct kha_bgp_fsm *f, uint64_t now);
/* The connection (or attempt) failed or was closed by the peer (Event 18). */
unsigned kha_bgp_fsm_tcp_fail(struct kha_bgp_fsm *f, uint64_t now);
/* A decoded OPEN that passed kha_bgp_open_check (Event 19): negotiates the hold time. */
unsigned kha_bgp_fsm_open(struct kha_bgp_fsm *f, uint64_t now, uint16_t peer_hold_s);
/* KEEPALIVE received (Event 26). */
unsigned kha_bgp_fsm_keepalive(struct kha_bgp_fsm *f, uint64_t now);
/* UPDATE or ROUTE-REFRESH received, well-formed (Event 27). */
unsigned kha_bgp_fsm_update(struct kha_bgp_fsm *f, uint64_t now);
/* NOTIFICATION received (Events 24/25): no answer, close. */
unsigned kha_bgp_fsm_notification(struct kha_bgp_fsm *f, uint64_t now);
/* A received message failed a check (Events 21/22/28): send err, close. */
unsigned kha_bgp_fsm_error(struct kha_bgp_fsm *f, uint64_t now, const struct kha_bgp_notify *err);
/* The BFD session of this peer went down (RFC 5882): Cease/BFD Down, close. */
unsigned kha_bgp_fsm_bfd_down(struct kha_bgp_fsm *f, uint64_t now);
/* Fires the timers whose deadline is <= now. */
unsigned kha_bgp_fsm_tick(struct kha_bgp_fsm *f, uint64_t now);
/* The earliest running deadline, 0 when no timer runs. */
uint64_t kha_bgp_fsm_next_us(const struct kha_bgp_fsm *f);
/* "Idle", "Connect", "Active", "OpenSent", "OpenConfirm", "Established". */
const char *kha_bgp_state_name(enum kha_bgp_state s);

/* ---- BFD (RFC 5880 asynchronous mode, RFC 5881 single hop) ---- */

#define KHA_BFD_PORT	   3784
#define KHA_BFD_SRC_MIN	   49152 /* RFC 5881 4: source ports 49152..65535 */
#define KHA_BFD_VERSION	   1
#define KHA_BFD_LEN	   24 /* without authentication */
#define KHA_BFD_TTL	   255
#define KHA_BFD_SLOW_TX_US 1000000 /* RFC 5880 6.8.3: at least 1 s while not Up */

enum kha_bfd_state {
	KHA_BFD_ADMIN_DOWN = 0,
	KHA_BFD_DOWN = 1,
	KHA_BFD_INIT = 2,
	KHA_BFD_UP = 3,
};

enum kha_bfd_diag {
	KHA_BFD_DIAG_NONE = 0,
	KHA_BFD_DIAG_EXPIRED = 1, /* Control Detection Time Expired */
	KHA_BFD_DIAG_NEIGHBOR_DOWN = 3,
	KHA_BFD_DIAG_ADMIN_DOWN = 7,
};

struct kha_bfd_packet {
	uint8_t version, diag, state;
	bool poll, final, cpi, auth, demand, multipoint;
	uint8_t detect_mult;
	uint8_t length;
	uint32_t my_disc, your_disc;
	uint32_t desired_min_tx_us, required_min_rx_us, required_min_echo_rx_us;
};

/* Encodes p (without authentication) into buf. Returns KHA_BFD_LEN or -ENOBUFS. */
int kha_bfd_encode(const struct kha_bfd_packet *p, uint8_t *buf, size_t size) KHA_WUR;
/*
 * Decodes a BFD control packet with the reception checks of RFC 5880 6.8.6 that need no
 * session: version 1, length >= 24 and <= len (26 with the A bit), detect mult and My
 * Discriminator non-zero, no multipoint, Your Discriminator set unless the state is Down or
 * AdminDown. Authentication is not supported (-EPROTONOSUPPORT). Returns 0, -EMSGSIZE or
 * -EBADMSG.
 */
int kha_bfd_decode(const uint8_t *buf, size_t len, struct kha_bfd_packet *ret) KHA_WUR;

enum kha_bfd_action {
	KHA_BFD_ACT_SEND = 1u << 0,  /* send a control packet now (kha_bfd_fsm_packet) */
	KHA_BFD_ACT_STATE = 1u << 1, /* the session state changed */
};

struct kha_bfd_fsm {
	uint32_t local_disc, remote_disc;
	enum kha_bfd_state state, remote_state;
	uint8_t diag;
	uint8_t detect_mult; /* ours */
	uint8_t remote_detect_mult;
	uint64_t desired_min_tx_us;  /* configured (used once Up) */
	uint64_t required_min_rx_us; /* configured */
	uint64_t remote_min_rx_us, remote_desired_min_tx_us;
	uint64_t tx_interval_us;	 /* what we advertise now (slow while not Up) */
	bool poll;			 /* a Poll Sequence runs (our timers changed) */
	bool final_pending;		 /* answer a Poll with Final in the next packet */
	uint64_t tx_at_us, detect_at_us; /* 0: off */
	unsigned jitter_seed;
};

/*
 * Sets up a session in Down with the given timers (desired_min_tx_us, required_min_rx_us > 0,
 * detect_mult > 0) and a local discriminator (non-zero, unique per session).
 */
void kha_bfd_fsm_init(struct kha_bfd_fsm *b, uint32_t local_disc, uint64_t desired_min_tx_us,
		      uint64_t required_min_rx_us, uint8_t detect_mult, uint64_t now);
/* A packet passed kha_bfd_decode and was addressed to this session (RFC 5880 6.8.6). */
unsigned kha_bfd_fsm_rx(struct kha_bfd_fsm *b, uint64_t now, const struct kha_bfd_packet *p);
/* Timers: periodic transmission (with RFC 5880 6.8.7 jitter) and detection time. */
unsigned kha_bfd_fsm_tick(struct kha_bfd_fsm *b, uint64_t now);
/* Administratively down (our stop): AdminDown, sent at once. */
unsigned kha_bfd_fsm_admin_down(struct kha_bfd_fsm *b, uint64_t now);
/* The packet to send now; schedules the next periodic one (clears the Final flag it carries). */
void kha_bfd_fsm_packet(struct kha_bfd_fsm *b, uint64_t now, struct kha_bfd_packet *ret);
/* Detection time (RFC 5880 6.8.4) as things stand; 0 before the peer was heard. */
uint64_t kha_bfd_detect_us(const struct kha_bfd_fsm *b);
uint64_t kha_bfd_fsm_next_us(const struct kha_bfd_fsm *b);
/* "AdminDown", "Down", "Init", "Up". */
const char *kha_bfd_state_name(enum kha_bfd_state s);

/* ---- speaker (the daemon) ---- */

#define KHA_BGP_MAX_PEERS    16
#define KHA_BGP_MAX_ANNOUNCE 8
#define KHA_BGP_MAX_TRACKS   4

struct kha_bgp_peer_config {
	struct kha_bgp_addr addr;
	uint32_t as;   /* 0: --peer-as */
	uint16_t port; /* where to connect (default 179) */
};

struct kha_bgp_config {
	struct kha_bgp_addr router_id; /* IPv4 (the BGP Identifier) */
	uint32_t local_as;
	uint32_t peer_as; /* default for peers without as= */
	struct kha_bgp_peer_config peers[KHA_BGP_MAX_PEERS];
	size_t npeers;
	struct kha_bgp_prefix announce[KHA_BGP_MAX_ANNOUNCE];
	size_t nannounce;
	struct kha_bgp_addr next_hop4, next_hop6; /* family 0: the session's local address */
	uint32_t communities[KHA_BGP_MAX_COMMUNITIES];
	size_t ncommunities;
	bool has_med;
	uint32_t med;
	uint32_t local_pref;	   /* iBGP (default 100) */
	uint64_t hold_time_us;	   /* default 90 s; 0 or >= 3 s */
	uint64_t keepalive_us;	   /* 0: hold / 3 */
	uint64_t connect_retry_us; /* default 5 s */
	bool passive;		   /* accept only, never connect */
	uint16_t listen_port;	   /* default 179; 0: do not listen */
	char *md5_password;	   /* owned; TCP-MD5 (RFC 2385) on every session */
	bool gtsm;		   /* RFC 5082: send TTL 255, accept only 255 (single hop) */
	bool bfd;
	uint64_t bfd_interval_us;	    /* desired min tx = required min rx (default 300 ms) */
	unsigned bfd_multiplier;	    /* default 3 */
	uint64_t graceful_shutdown_wait_us; /* default 5 s: GRACEFUL_SHUTDOWN announced this long */
	char interface[16];		    /* where the announced addresses live (default lo) */
	char *track_urls[KHA_BGP_MAX_TRACKS]; /* owned; HTTP GET, 200 = healthy */
	size_t ntracks;
	uint64_t track_interval_us; /* default 1 s */
	uint64_t track_timeout_us;  /* default 1 s */
	unsigned track_fall;	    /* default 3 */
	unsigned track_rise;	    /* default 2 */
	char *track_cacert;	    /* owned; CA bundle for https:// tracks (NULL: system) */
	char metrics_addr[64];	    /* "" = off; default 127.0.0.1:9445 */
};

void kha_bgp_config_init(struct kha_bgp_config *c);
void kha_bgp_config_release(struct kha_bgp_config *c);

struct kha_bgp;

/*
 * Creates the speaker for cfg (copied; owned strings taken over and cleared in cfg): opens the
 * listening socket, the rtnetlink socket for the addresses, the BFD socket, binds the admin
 * endpoints; removes an announced address a killed run left on the interface. Nothing is sent
 * yet. Returns 0 or a negative errno with d set.
 */
int kha_bgp_new(struct kha_bgp_config *cfg, struct kha_diag *d, struct kha_bgp **ret) KHA_WUR;
/*
 * Runs until SIGTERM/SIGINT, then stops gracefully: re-announces with GRACEFUL_SHUTDOWN, waits
 * graceful_shutdown_wait, withdraws, closes every session with a Cease, removes the addresses.
 * Returns 0 or a negative errno.
 */
int kha_bgp_run(struct kha_bgp *b) KHA_WUR;
void kha_bgp_free(struct kha_bgp *b);

/*
 * Reloading (SIGHUP): fn fills cfg (initialised by kha_bgp_config_init) as at start. Peers added
 * or removed apply without touching the others; communities, MED, local preference and next
 * hops are re-announced; tracks restart; the rest needs a restart and is kept with a warning.
 */
typedef int (*kha_bgp_reload_fn)(void *userdata, struct kha_bgp_config *cfg, struct kha_diag *d);
void kha_bgp_set_reload(struct kha_bgp *b, kha_bgp_reload_fn fn, void *userdata);

#endif
