// SPDX-License-Identifier: MIT
/* kha bgp: flags, help and wiring of the BGP speaker (lib/bgp). */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <jansson.h>

#include "cmd-common.h"
#include "cmd-opt.h"
#include "commands.h"
#include "kha/bgp.h"
#include "kha/config.h"
#include "kha/file.h"
#include "kha/http.h"
#include "kha/log.h"
#include "kha/parse.h"
#include "kha/banned.h"

enum {
	OPT_ROUTER_ID = 256,
	OPT_LOCAL_AS,
	OPT_PEER,
	OPT_PEER_AS,
	OPT_ANNOUNCE,
	OPT_NEXT_HOP,
	OPT_COMMUNITY,
	OPT_MED,
	OPT_LOCAL_PREF,
	OPT_HOLD_TIME,
	OPT_LISTEN_PORT,
	OPT_MD5_PASSWORD_FILE,
	OPT_BFD_INTERVAL,
	OPT_INTERFACE,
	OPT_TRACK_URL,
	OPT_TRACK_CACERT,
};

struct opts {
	struct kha_bgp_config cfg;
	bool have_router_id, have_local_as, have_peer_as;
	enum kha_log_level level;
	enum kha_log_format format;
};

static int apply(void *target, int val, const char *arg, struct kha_diag *d);

#define CALL(n, a, v, h)      CMD_OPT_CALL_ENTRY(n, a, v, h)
#define TYPED(k, n, a, f, h)  CMD_OPT_TYPED_ENTRY(k, struct opts, n, a, f, h)
#define DUR(n, f, h)	      TYPED(CMD_OPT_DURATION, n, "DURATION", cfg.f, h)
#define UINT(n, f, lo, hi, h) CMD_OPT_UINT_ENTRY(struct opts, n, cfg.f, lo, hi, h)

static const struct cmd_opt options[] = {
	CMD_OPT_TITLE_ENTRY("Session:"),
	CALL("router-id", "ADDR", OPT_ROUTER_ID,
	     "BGP identifier, an IPv4 address of this host (required)"),
	CALL("local-as", "N", OPT_LOCAL_AS, "our AS, 1-4294967295 (4-octet AS numbers: RFC 6793)"),
	CALL("peer", "ADDR[,as=N][,port=N]", OPT_PEER,
	     "a router to peer with (repeat); as= overrides\n--peer-as, port= where to connect "
	     "(default 179)"),
	CALL("peer-as", "N", OPT_PEER_AS, "the routers' AS (required unless every --peer has as=)"),
	CALL("hold-time", "DURATION", OPT_HOLD_TIME,
	     "proposed hold time, 0 or 3s-65535s (default 90s)"),
	DUR("keepalive", keepalive_us, "between KEEPALIVEs (default: a third of the hold time)"),
	DUR("connect-retry", connect_retry_us,
	    "first retry of a refused connection, doubled each time\nup to 60s (default 5s)"),
	TYPED(CMD_OPT_BOOL, "passive", NULL, cfg.passive,
	      "never connect, only accept the routers' connections"),
	CALL("listen-port", "N", OPT_LISTEN_PORT, "TCP port to accept on (default 179; 0: none)"),
	CALL("md5-password-file", "FILE", OPT_MD5_PASSWORD_FILE,
	     "TCP-MD5 signatures (RFC 2385) with this password"),
	TYPED(CMD_OPT_BOOL, "gtsm", NULL, cfg.gtsm,
	      "send with TTL 255 and accept only TTL 255 (RFC 5082)"),
	CMD_OPT_TITLE_ENTRY("Announcement:"),
	CALL("announce", "ADDR/LEN", OPT_ANNOUNCE,
	     "the service address, 10.96.0.1/32 or fd00::1/128\n(repeat); a host address is also "
	     "added to --interface\nwhile it is announced"),
	CALL("interface", "IF", OPT_INTERFACE, "where the addresses live (default lo; or a dummy)"),
	CALL("next-hop", "ADDR", OPT_NEXT_HOP,
	     "next hop of one family (repeat for the other; default:\nthe session's own address)"),
	CALL("community", "C", OPT_COMMUNITY,
	     "65000:100 or graceful-shutdown, no-export ... (repeat)"),
	CALL("med", "N", OPT_MED, "MULTI_EXIT_DISC to send"),
	CALL("local-pref", "N", OPT_LOCAL_PREF, "LOCAL_PREF on iBGP sessions (default 100)"),
	TYPED(CMD_OPT_DURATION0, "graceful-shutdown-wait", "DURATION",
	      cfg.graceful_shutdown_wait_us,
	      "on SIGTERM, announce with GRACEFUL_SHUTDOWN\n(RFC 8326) this long before withdrawing "
	      "(default 5s)"),
	CMD_OPT_TITLE_ENTRY("BFD (RFC 5880/5881, single hop, UDP 3784):"),
	TYPED(CMD_OPT_BOOL, "bfd", NULL, cfg.bfd,
	      "a BFD session with each peer; BFD down ends the BGP\nsession (and the router drops "
	      "this path) at once"),
	CALL("bfd-interval", "DURATION", OPT_BFD_INTERVAL,
	     "desired transmit and required receive interval\n(default 300ms)"),
	UINT("bfd-multiplier", bfd_multiplier, 1, 255, "packets missed before down (default 3)"),
	CMD_OPT_TITLE_ENTRY("Health tracks:"),
	CALL("track-url", "URL", OPT_TRACK_URL,
	     "HTTP GET, 200 = healthy (repeat); while one fails the\naddress is withdrawn"),
	DUR("track-interval", track_interval_us, "between checks (default 1s)"),
	DUR("track-timeout", track_timeout_us, "per check (default 1s)"),
	UINT("track-fall", track_fall, 1, 100, "failures before withdrawing (default 3)"),
	UINT("track-rise", track_rise, 1, 100, "successes before announcing again (default 2)"),
	CALL("track-cacert", "FILE", OPT_TRACK_CACERT,
	     "CA bundle for https:// tracks (the cluster CA for the\napiserver's /readyz; default: "
	     "the system store)"),
	CMD_OPT_TITLE_ENTRY("Operations:"),
	CMD_OPTS_DAEMON(struct opts, cfg.metrics_addr, "127.0.0.1:9445", level, format),
	CMD_OPT_HELP_ENTRY,
	{},
};

static void usage(FILE *out)
{
	fprintf(out, "Usage: kha bgp --router-id ADDR --local-as N --peer ADDR[,as=N][,port=N]...\n"
		     "               --peer-as N --announce ADDR/LEN... [flags]\n"
		     "       kha bgp status [--metrics-addr ADDR] [-o table|json]\n"
		     "\n"
		     "Every master announces the apiserver's service address by BGP; the routers\n"
		     "spread connections over all masters that announce it (ECMP). The address is\n"
		     "announced only while the health tracks pass and withdrawn at once when one\n"
		     "fails; with --bfd a dead master's path goes within the BFD detection time.\n"
		     "kha takes no routes: whatever a peer announces is checked and dropped.\n"
		     "See docs/bgp.md (router configuration for BIRD 2 and FRR).\n"
		     "\n"
		     "Example (a master at 10.0.0.11, two top-of-rack routers in AS 65000):\n"
		     "  kha bgp --router-id 10.0.0.11 --local-as 65011 --peer-as 65000 \\\n"
		     "      --peer 10.0.0.1 --peer 10.0.0.2 --announce 10.96.0.1/32 --bfd \\\n"
		     "      --track-url https://127.0.0.1:6443/readyz \\\n"
		     "      --track-cacert /etc/kubernetes/pki/ca.crt\n"
		     "\n");
	cmd_opts_help(out, options);
	fprintf(out,
		"\n"
		"Needs CAP_NET_ADMIN (the address, TCP-MD5) and CAP_NET_BIND_SERVICE (port 179).\n"
		"Signals: SIGTERM/SIGINT: announce with GRACEFUL_SHUTDOWN, wait, withdraw, close\n"
		"every session with a Cease, remove the addresses, exit 0 (a second signal skips\n"
		"the wait). SIGHUP re-reads --config and the flags: peers added or removed without\n"
		"touching the others; communities, MED, local preference, next hops, announced\n"
		"prefixes and tracks apply at once; the rest needs a restart.\n"
		"Exit codes: 0 stopped cleanly, 64 bad flags, 78 bad configuration (unknown\n"
		"interface, port in use, unreadable password file).\n");
}

static int set_as(uint32_t *dst, const char *arg, struct kha_diag *d)
{
	uint64_t v;

	if (kha_parse_u64(arg, 1, 4294967295ull, &v) < 0)
		return kha_diag_set(d, EINVAL, "'%s': expected an AS number, 1-4294967295", arg);
	*dst = (uint32_t)v;
	return 0;
}

/* "10.0.0.1", "10.0.0.1,as=65000,port=1179", "fd00::1,as=65000" */
static int add_peer(struct kha_bgp_config *c, const char *arg, struct kha_diag *d)
{
	char buf[128], *save = NULL, *tok;
	struct kha_bgp_peer_config p = {};
	int r;

	if (c->npeers >= KHA_BGP_MAX_PEERS)
		return kha_diag_set(d, EINVAL, "at most %d peers", KHA_BGP_MAX_PEERS);
	if (strlen(arg) >= sizeof(buf))
		return kha_diag_set(d, EINVAL, "'%s': too long", arg);
	snprintf(buf, sizeof(buf), "%s", arg);
	tok = strtok_r(buf, ",", &save);
	if (!tok || kha_bgp_parse_addr(tok, &p.addr, NULL) < 0)
		return kha_diag_set(d, EINVAL, "'%s': expected ADDR[,as=N][,port=N]", arg);
	while ((tok = strtok_r(NULL, ",", &save))) {
		uint64_t v;

		if (strncmp(tok, "as=", 3) == 0) {
			r = set_as(&p.as, tok + 3, d);
			if (r < 0)
				return r;
		} else if (strncmp(tok, "port=", 5) == 0) {
			if (kha_parse_u64(tok + 5, 1, 65535, &v) < 0)
				return kha_diag_set(d, EINVAL, "'%s': port= expects 1-65535", arg);
			p.port = (uint16_t)v;
		} else {
			return kha_diag_set(d, EINVAL,
					    "'%s': unknown option '%s' (expected as=N or port=N)",
					    arg, tok);
		}
	}
	for (size_t i = 0; i < c->npeers; i++)
		if (kha_bgp_addr_equal(&c->peers[i].addr, &p.addr))
			return kha_diag_set(d, EINVAL, "'%s': this peer is given twice", arg);
	c->peers[c->npeers++] = p;
	return 0;
}

static int read_password(char **dst, const char *path, struct kha_diag *d)
{
	char *buf = NULL;
	size_t len = 0;
	int r = kha_file_read_all(path, 4096, &buf, &len, d);

	if (r < 0)
		return r;
	while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		buf[--len] = '\0';
	if (!len || len > 80 || strlen(buf) != len) {
		explicit_bzero(buf, len);
		free(buf);
		return kha_diag_set(
			d, EINVAL, "%s: the password must be one line of 1-80 bytes (TCP-MD5 keys)",
			path);
	}
	if (*dst) {
		explicit_bzero(*dst, strlen(*dst));
		free(*dst);
	}
	*dst = buf;
	return 0;
}

static int apply(void *target, int val, const char *arg, struct kha_diag *d)
{
	struct opts *o = target;
	struct kha_bgp_config *c = &o->cfg;
	struct kha_bgp_addr a;
	uint64_t us;
	unsigned u;
	int r;

	switch (val) {
	case OPT_ROUTER_ID:
		if (kha_bgp_parse_addr(arg, &a, NULL) < 0 || a.family != AF_INET ||
		    memcmp(a.a, "\0\0\0\0", 4) == 0)
			return kha_diag_set(d, EINVAL,
					    "'%s': expected a non-zero IPv4 address (the BGP "
					    "identifier is 32 bits)",
					    arg);
		c->router_id = a;
		o->have_router_id = true;
		return 0;
	case OPT_LOCAL_AS:
		o->have_local_as = true;
		return set_as(&c->local_as, arg, d);
	case OPT_PEER_AS:
		o->have_peer_as = true;
		return set_as(&c->peer_as, arg, d);
	case OPT_PEER:
		return add_peer(c, arg, d);
	case OPT_ANNOUNCE:
		if (c->nannounce >= KHA_BGP_MAX_ANNOUNCE)
			return kha_diag_set(d, EINVAL, "at most %d prefixes", KHA_BGP_MAX_ANNOUNCE);
		r = kha_bgp_parse_prefix(arg, &c->announce[c->nannounce], d);
		if (r == 0)
			c->nannounce++;
		return r;
	case OPT_NEXT_HOP:
		r = kha_bgp_parse_addr(arg, &a, d);
		if (r < 0)
			return r;
		*(a.family == AF_INET ? &c->next_hop4 : &c->next_hop6) = a;
		return 0;
	case OPT_COMMUNITY:
		if (c->ncommunities >= KHA_BGP_MAX_COMMUNITIES - 1)
			return kha_diag_set(d, EINVAL, "at most %d communities",
					    KHA_BGP_MAX_COMMUNITIES - 1);
		r = kha_bgp_parse_community(arg, &c->communities[c->ncommunities], d);
		if (r == 0)
			c->ncommunities++;
		return r;
	case OPT_MED:
		if (kha_parse_u64(arg, 0, 4294967295ull, &us) < 0)
			return kha_diag_set(d, EINVAL, "'%s': expected 0-4294967295", arg);
		c->has_med = true;
		c->med = (uint32_t)us;
		return 0;
	case OPT_LOCAL_PREF:
		if (kha_parse_u64(arg, 0, 4294967295ull, &us) < 0)
			return kha_diag_set(d, EINVAL, "'%s': expected 0-4294967295", arg);
		c->local_pref = (uint32_t)us;
		return 0;
	case OPT_HOLD_TIME:
		if (kha_parse_duration_us(arg, &us) < 0 || us % KHA_USEC_PER_SEC ||
		    (us && us < 3 * KHA_USEC_PER_SEC) || us > 65535 * KHA_USEC_PER_SEC)
			return kha_diag_set(d, EINVAL,
					    "'%s': expected 0 (no keepalives) or whole seconds "
					    "from 3s to 65535s (RFC 4271 4.2)",
					    arg);
		c->hold_time_us = us;
		return 0;
	case OPT_LISTEN_PORT:
		r = kha_opt_set_uint(&u, arg, 0, 65535, d);
		if (r == 0)
			c->listen_port = (uint16_t)u;
		return r;
	case OPT_MD5_PASSWORD_FILE:
		return read_password(&c->md5_password, arg, d);
	case OPT_BFD_INTERVAL:
		if (kha_parse_duration_us(arg, &us) < 0 || us < 10000 || us > 60 * KHA_USEC_PER_SEC)
			return kha_diag_set(d, EINVAL, "'%s': expected a duration from 10ms to 60s",
					    arg);
		c->bfd_interval_us = us;
		return 0;
	case OPT_INTERFACE:
		if (!*arg || strlen(arg) >= sizeof(c->interface) || strchr(arg, '/') ||
		    strchr(arg, ':'))
			return kha_diag_set(d, EINVAL, "'%s': not an interface name", arg);
		snprintf(c->interface, sizeof(c->interface), "%s", arg);
		return 0;
	case OPT_TRACK_URL:
		if (strncmp(arg, "http://", 7) != 0 && strncmp(arg, "https://", 8) != 0)
			return kha_diag_set(d, EINVAL, "'%s': expected an http:// or https:// URL",
					    arg);
		if (c->ntracks >= KHA_BGP_MAX_TRACKS)
			return kha_diag_set(d, EINVAL, "at most %d tracks", KHA_BGP_MAX_TRACKS);
		r = kha_opt_set_str(&c->track_urls[c->ntracks], arg, d);
		if (r == 0)
			c->ntracks++;
		return r;
	case OPT_TRACK_CACERT:
		if (access(arg, R_OK) < 0)
			return kha_diag_set(d, errno, "'%s': %s", arg, strerror(errno));
		return kha_opt_set_str(&c->track_cacert, arg, d);
	}
	return -EINVAL;
}

/* What the flags must say together; a usage error in d, else 0. */
static int check(const struct opts *o, struct kha_diag *d)
{
	const struct kha_bgp_config *c = &o->cfg;

	if (!o->have_router_id)
		return kha_diag_set(d, EINVAL, "--router-id is required");
	if (!o->have_local_as)
		return kha_diag_set(d, EINVAL, "--local-as is required");
	if (!c->npeers)
		return kha_diag_set(d, EINVAL, "--peer is required");
	if (!c->nannounce)
		return kha_diag_set(d, EINVAL, "--announce is required");
	for (size_t i = 0; i < c->npeers; i++)
		if (!c->peers[i].as && !o->have_peer_as)
			return kha_diag_set(d, EINVAL,
					    "--peer-as is required (or as=N on every --peer)");
	if (c->keepalive_us && c->hold_time_us && c->keepalive_us >= c->hold_time_us)
		return kha_diag_set(d, EINVAL, "--keepalive must be shorter than --hold-time");
	return 0;
}

/* ---- kha bgp status ---- */

static void status_usage(FILE *out)
{
	fprintf(out, "Usage: kha bgp status [--metrics-addr ADDR] [-o table|json]\n\n"
		     "Shows the sessions and the announcement of a running kha bgp (read from its\n"
		     "/status endpoint, 127.0.0.1:9445 unless --metrics-addr says otherwise).\n"
		     "Exit 0 when announcing with every session Established, 1 otherwise\n"
		     "(degraded: a router does not carry this path), 69 unreachable, 64 usage.\n\n"
		     "Flags:\n");
	cmd_status_help(out);
	fprintf(out, "\nExample:\n  kha bgp status --metrics-addr 127.0.0.1:9445 -o json\n");
}

static int status_main(int argc, char **argv)
{
	json_t *root = NULL, *peers, *p, *t, *ann;
	bool json = false, healthy;
	size_t i;
	int r;

	r = cmd_status_fetch("bgp", argc, argv, "127.0.0.1:9445", status_usage, &root, &json);
	if (r >= 0)
		return r;
	peers = json_object_get(root, "peers");
	if (!json_is_array(peers) || !json_is_boolean(json_object_get(root, "announcing"))) {
		fprintf(stderr, "kha bgp status: unexpected answer (not a kha bgp?)\n");
		json_decref(root);
		return KHA_EXIT_DATAERR;
	}
	healthy = json_is_true(json_object_get(root, "announcing"));
	json_array_foreach (peers, i, p)
		healthy = healthy && strcmp(json_string_value(json_object_get(p, "state")) ?: "",
					    "Established") == 0;
	if (json) {
		json_dumpf(root, stdout, JSON_INDENT(2));
		fputc('\n', stdout);
	} else {
		printf("router     %s AS %lld\n",
		       json_string_value(json_object_get(root, "router_id")) ?: "?",
		       (long long)json_integer_value(json_object_get(root, "local_as")));
		ann = json_object_get(root, "announce");
		printf("announce   ");
		json_array_foreach (ann, i, t)
			printf("%s%s", i ? ", " : "", json_string_value(t) ?: "?");
		printf(" %s%s\n",
		       json_is_true(json_object_get(root, "announcing")) ? "ANNOUNCED"
									 : "WITHDRAWN",
		       json_is_true(json_object_get(root, "graceful_shutdown"))
			       ? " (graceful shutdown)"
			       : "");
		printf("%-40s %-8s %-12s %-10s %-8s %s\n", "PEER", "AS", "STATE", "UP", "BFD",
		       "LAST ERROR");
		json_array_foreach (peers, i, p) {
			json_t *bfd = json_object_get(p, "bfd");
			char up[32];

			snprintf(up, sizeof(up), "%llds",
				 (long long)json_integer_value(
					 json_object_get(p, "established_seconds")));
			printf("%-40s %-8lld %-12s %-10s %-8s %s\n",
			       json_string_value(json_object_get(p, "address")) ?: "?",
			       (long long)json_integer_value(json_object_get(p, "as")),
			       json_string_value(json_object_get(p, "state")) ?: "?", up,
			       json_is_object(bfd)
				       ? json_string_value(json_object_get(bfd, "state")) ?: "?"
				       : "-",
			       json_string_value(json_object_get(p, "last_error")) ?: "");
		}
		json_array_foreach (json_object_get(root, "tracks"), i, t)
			printf("track      %s %s (%s)\n",
			       json_string_value(json_object_get(t, "url")) ?: "?",
			       json_is_true(json_object_get(t, "up")) ? "up" : "DOWN",
			       json_string_value(json_object_get(t, "detail")) ?: "");
	}
	json_decref(root);
	return healthy ? KHA_EXIT_OK : KHA_EXIT_DEGRADED;
}

/* ---- the daemon ---- */

static int reload(void *userdata, struct kha_bgp_config *cfg, struct kha_diag *d)
{
	const struct kha_args_source *src = userdata; /* what a SIGHUP reads again */
	struct opts o = {.cfg = *cfg, .level = KHA_LOG_INFO, .format = KHA_LOG_LOGFMT};

	if (cmd_opts_reapply(options, apply, &o, src, d) != 0 || check(&o, d) < 0) {
		*cfg = o.cfg; /* the caller releases what was set */
		return -EINVAL;
	}
	kha_log_setup(o.level, o.format);
	*cfg = o.cfg;
	return 0;
}

int cmd_bgp_main(int argc, char **argv)
{
	struct opts o = {.level = KHA_LOG_INFO, .format = KHA_LOG_LOGFMT};
	struct kha_diag d = {};
	struct kha_bgp *b = NULL;
	struct kha_args_source src = {.argc = argc, .argv = argv};
	int r, code;

	if (argc >= 2 && strcmp(argv[1], "status") == 0)
		return status_main(argc - 1, cmd_sub_argv(argv));
	if (cmd_opts_scan(options, argc, argv, &src.config)) {
		usage(stdout);
		return KHA_EXIT_OK;
	}
	kha_bgp_config_init(&o.cfg);
	code = cmd_opts_reapply(options, apply, &o, &src, &d);
	if (code == 0 && optind < argc) {
		kha_diag_set(&d, EINVAL, "unexpected argument '%s'", argv[optind]);
		code = KHA_EXIT_USAGE;
	}
	if (code == 0 && check(&o, &d) < 0)
		code = KHA_EXIT_USAGE;
	if (code != 0) {
		fprintf(stderr, "kha bgp: %s%s\n", d.msg,
			code == KHA_EXIT_USAGE ? " (run 'kha bgp --help')" : "");
		kha_bgp_config_release(&o.cfg);
		return code;
	}
	kha_log_setup(o.level, o.format);
	r = kha_bgp_new(&o.cfg, &d, &b);
	kha_bgp_config_release(&o.cfg);
	if (r < 0) {
		fprintf(stderr, "kha bgp: %s\n", d.msg[0] ? d.msg : strerror(-r));
		return r == -ENOMEM ? KHA_EXIT_SOFTWARE : KHA_EXIT_CONFIG;
	}
	kha_bgp_set_reload(b, reload, &src);
	r = kha_bgp_run(b);
	kha_bgp_free(b);
	if (r < 0) {
		fprintf(stderr, "kha bgp: %s\n", strerror(-r));
		return KHA_EXIT_SOFTWARE;
	}
	return KHA_EXIT_OK;
}
