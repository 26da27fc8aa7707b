// SPDX-License-Identifier: MIT
/* kha vip: flags, help and wiring of the VRRP virtual IP (lib/vrrp). */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <jansson.h>

#include "cmd-common.h"
#include "cmd-opt.h"
#include "commands.h"
#include "kha/config.h"
#include "kha/http.h"
#include "kha/log.h"
#include "kha/parse.h"
#include "kha/vrrp.h"
#include "kha/banned.h"

enum {
	OPT_INTERFACE = 256,
	OPT_VIP,
	OPT_VRID,
	OPT_PRIORITY,
	OPT_ADVERT_INTERVAL,
	OPT_PEER,
	OPT_NO_PREEMPT,
	OPT_GARP_COUNT,
	OPT_GARP_REPEAT,
	OPT_TRACK_URL,
	OPT_TRACK_FALL,
	OPT_TRACK_RISE,
	OPT_NOTIFY,
};

struct opts {
	struct kha_vrrp_config cfg;
	bool have_interface, have_vip, have_vrid;
	enum kha_log_level level;
	enum kha_log_format format;
};

static int apply(void *target, int val, const char *arg, struct kha_diag *d);

#define CALL(name, arg, val, help)                                \
	{                                                         \
		CMD_OPT_CALL, name, 0, arg, help, val, 0, 0, NULL \
	}

static const struct cmd_opt options[] = {
	CMD_OPT_TITLE_ENTRY("Virtual router:"),
	CALL("interface", "IF", OPT_INTERFACE,
	     "interface to speak VRRP on and to hold the VIP (required)"),
	CALL("vip", "ADDR/PREFIX", OPT_VIP,
	     "the virtual IPv4 address, e.g. 10.0.0.100/24 (required)"),
	CALL("vrid", "N", OPT_VRID, "virtual router id, 1-255, unique per L2 segment (required)"),
	CALL("priority", "N", OPT_PRIORITY, "1-254, the highest alive is master (default 100)"),
	CALL("advert-interval", "DURATION", OPT_ADVERT_INTERVAL,
	     "between advertisements, 10ms-40.95s in steps of 10ms\n(default 1s); a dead master "
	     "is replaced after about\n3.6 intervals"),
	CALL("peer", "ADDR", OPT_PEER,
	     "send unicast to this peer instead of multicast to\n224.0.0.18 (repeat; only peers "
	     "are heard then)"),
	CALL("no-preempt", NULL, OPT_NO_PREEMPT,
	     "a higher priority coming back does not take the VIP\nfrom a working master "
	     "(default: it does)"),
	CALL("garp-count", "N", OPT_GARP_COUNT, "gratuitous ARPs sent on takeover (default 5)"),
	CALL("garp-repeat", "DURATION", OPT_GARP_REPEAT,
	     "send them again this long after takeover (default 5s;\n0: once)"),
	CMD_OPT_TITLE_ENTRY("Health tracks:"),
	CALL("track-url", "URL", OPT_TRACK_URL,
	     "HTTP GET, 200 = healthy (repeat); while one fails, this\nhost leaves the election "
	     "(FAULT) and drops the VIP"),
	{CMD_OPT_DURATION, "track-interval", 0, "DURATION", "between checks (default 1s)", 0,
	 offsetof(struct opts, cfg.track_interval_us), 0, NULL},
	{CMD_OPT_DURATION, "track-timeout", 0, "DURATION", "per check (default 1s)", 0,
	 offsetof(struct opts, cfg.track_timeout_us), 0, NULL},
	CALL("track-fall", "N", OPT_TRACK_FALL, "failures before FAULT (default 3)"),
	CALL("track-rise", "N", OPT_TRACK_RISE, "successes before it rejoins (default 2)"),
	CMD_OPT_TITLE_ENTRY("Operations:"),
	CALL("notify", "CMD", OPT_NOTIFY,
	     "run with /bin/sh -c on every state change, with\nKHA_VIP_STATE, "
	     "KHA_VIP_PREVIOUS_STATE, KHA_VIP_VRID,\nKHA_VIP_ADDRESS and KHA_VIP_INTERFACE set"),
	CMD_OPTS_DAEMON(struct opts, cfg.metrics_addr, "127.0.0.1:9444", level, format),
	CMD_OPT_HELP_ENTRY,
	{},
};

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: kha vip --interface IF --vip ADDR/PREFIX --vrid N [--priority N] [flags]\n"
		"       kha vip status [--metrics-addr ADDR] [-o table|json]\n"
		"\n"
		"A floating virtual IP by VRRP version 3 (RFC 5798, IPv4): two or three hosts\n"
		"running kha proxy share one apiserver address; the highest priority alive holds\n"
		"it, a backup takes it over when the master's advertisements stop. Interoperates\n"
		"with keepalived (vrrp_version 3). See docs/vip.md.\n"
		"\n"
		"Example (three load-balancer hosts; 10.0.0.100 in the apiserver certificate):\n"
		"  kha vip --interface eth0 --vip 10.0.0.100/24 --vrid 51 --priority 150 \\\n"
		"      --track-url http://127.0.0.1:9443/readyz\n"
		"\n");
	cmd_opts_help(out, options);
	fprintf(out,
		"\n"
		"Needs CAP_NET_RAW and CAP_NET_ADMIN. VRRP has no authentication: use it on a\n"
		"trusted segment only.\n"
		"Signals: SIGTERM/SIGINT: a master advertises priority 0 (a backup takes over at\n"
		"once) and removes the VIP, then exits 0. SIGHUP re-reads --config and the flags:\n"
		"priority, preemption, advert interval, notify and ARP settings apply at once\n"
		"(lower the priority to hand the VIP over); the rest needs a restart.\n"
		"Exit codes: 0 stopped cleanly, 64 bad flags, 78 bad configuration (unknown\n"
		"interface, no IPv4 address on it, VIP already configured, address in use).\n");
}

static int set_interval(uint64_t *dst, const char *arg, struct kha_diag *d)
{
	uint64_t us;

	if (kha_parse_duration_us(arg, &us) < 0 || us < 10000 || us % 10000 != 0 ||
	    us / 10000 > KHA_VRRP_MAX_INTERVAL_CS)
		return kha_diag_set(d, EINVAL,
				    "'%s': expected a duration from 10ms to 40.95s in steps of "
				    "10ms (VRRPv3 counts centiseconds)",
				    arg);
	*dst = us;
	return 0;
}

static int apply(void *target, int val, const char *arg, struct kha_diag *d)
{
	struct opts *o = target;
	struct kha_vrrp_config *c = &o->cfg;
	struct in_addr a;
	unsigned u;
	int r;

	switch (val) {
	case OPT_INTERFACE:
		if (!*arg || strlen(arg) >= sizeof(c->interface) || strchr(arg, '/') ||
		    strchr(arg, ':'))
			return kha_diag_set(d, EINVAL, "'%s': not an interface name", arg);
		snprintf(c->interface, sizeof(c->interface), "%s", arg);
		o->have_interface = true;
		return 0;
	case OPT_VIP:
		r = kha_vrrp_parse_prefix(arg, &c->vip, &c->prefix, d);
		o->have_vip = r == 0;
		return r;
	case OPT_VRID:
		r = kha_opt_set_uint(&u, arg, 1, 255, d);
		if (r == 0) {
			c->vrid = (uint8_t)u;
			o->have_vrid = true;
		}
		return r;
	case OPT_PRIORITY:
		r = kha_opt_set_uint(&u, arg, 1, 254, d);
		if (r == 0)
			c->priority = (uint8_t)u;
		return r;
	case OPT_ADVERT_INTERVAL:
		return set_interval(&c->adver_interval_us, arg, d);
	case OPT_PEER:
		if (inet_pton(AF_INET, arg, &a) != 1 || a.s_addr == 0)
			return kha_diag_set(d, EINVAL, "'%s': expected an IPv4 address", arg);
		if (c->npeers >= KHA_VRRP_MAX_PEERS)
			return kha_diag_set(d, EINVAL, "at most %d peers", KHA_VRRP_MAX_PEERS);
		c->peers[c->npeers++] = a.s_addr;
		return 0;
	case OPT_NO_PREEMPT:
		c->preempt = false;
		return 0;
	case OPT_GARP_COUNT:
		return kha_opt_set_uint(&c->garp_count, arg, 0, 100, d);
	case OPT_GARP_REPEAT:
		return kha_opt_set_duration(&c->garp_repeat_us, arg, true, d);
	case OPT_TRACK_URL:
		if (strncmp(arg, "http://", 7) != 0 && strncmp(arg, "https://", 8) != 0)
			return kha_diag_set(d, EINVAL, "'%s': expected an http:// or https:// URL",
					    arg);
		if (c->ntracks >= KHA_VRRP_MAX_TRACKS)
			return kha_diag_set(d, EINVAL, "at most %d tracks", KHA_VRRP_MAX_TRACKS);
		r = kha_opt_set_str(&c->track_urls[c->ntracks], arg, d);
		if (r == 0)
			c->ntracks++;
		return r;
	case OPT_TRACK_FALL:
		return kha_opt_set_uint(&c->track_fall, arg, 1, 100, d);
	case OPT_TRACK_RISE:
		return kha_opt_set_uint(&c->track_rise, arg, 1, 100, d);
	case OPT_NOTIFY:
		return kha_opt_set_str(&c->notify, arg, d);
	}
	return -EINVAL;
}

/* ---- kha vip status ---- */

static void status_usage(FILE *out)
{
	fprintf(out, "Usage: kha vip status [--metrics-addr ADDR] [-o table|json]\n\n"
		     "Shows the state of a running kha vip, read from its /status endpoint\n"
		     "(127.0.0.1:9444 unless --metrics-addr says otherwise).\n"
		     "Exit 0 MASTER or BACKUP, 1 FAULT or INIT, 69 unreachable, 64 usage.\n\n"
		     "Flags:\n");
	cmd_status_help(out);
	fprintf(out, "\nExample:\n  kha vip status --metrics-addr 127.0.0.1:9444 -o json\n");
}

static int status_main(int argc, char **argv)
{
	json_t *root = NULL, *tracks, *t;
	const char *state;
	bool json = false;
	size_t i;
	int r;

	r = cmd_status_fetch("vip", argc, argv, "127.0.0.1:9444", status_usage, &root, &json);
	if (r >= 0)
		return r;
	state = json_string_value(json_object_get(root, "state"));
	if (!state) {
		json_decref(root);
		return cmd_fail("kha vip status", json, KHA_EXIT_DATAERR,
				"unexpected answer (not a kha vip?)");
	}
	if (json) {
		json_dumpf(root, stdout, JSON_INDENT(2));
		fputc('\n', stdout);
	} else {
		printf("state      %s\n", KHA_TERM(state));
		printf("vip        %s on %s%s\n",
		       KHA_TERM(json_string_value(json_object_get(root, "vip")) ?: "?"),
		       KHA_TERM(json_string_value(json_object_get(root, "interface")) ?: "?"),
		       json_is_true(json_object_get(root, "holds_vip")) ? " (held here)" : "");
		printf("vrid       %lld\n",
		       (long long)json_integer_value(json_object_get(root, "vrid")));
		printf("priority   %lld (preempt %s)\n",
		       (long long)json_integer_value(json_object_get(root, "priority")),
		       json_is_true(json_object_get(root, "preempt")) ? "on" : "off");
		printf("master     %s (priority %lld, every %lldms)\n",
		       *(json_string_value(json_object_get(root, "master")) ?: "")
			       ? KHA_TERM(json_string_value(json_object_get(root, "master")))
			       : "none",
		       (long long)json_integer_value(json_object_get(root, "master_priority")),
		       (long long)json_integer_value(
			       json_object_get(root, "master_advert_interval_ms")));
		printf("adverts    %lld sent, %lld received; %lld transitions\n",
		       (long long)json_integer_value(json_object_get(root, "adverts_sent")),
		       (long long)json_integer_value(json_object_get(root, "adverts_received")),
		       (long long)json_integer_value(json_object_get(root, "transitions")));
		tracks = json_object_get(root, "tracks");
		json_array_foreach (tracks, i, t)
			printf("track      %s %s (%s)\n",
			       KHA_TERM(json_string_value(json_object_get(t, "url")) ?: "?"),
			       json_is_true(json_object_get(t, "up")) ? "up" : "DOWN",
			       KHA_TERM(json_string_value(json_object_get(t, "detail"))));
	}
	r = strcmp(state, "MASTER") == 0 || strcmp(state, "BACKUP") == 0 ? KHA_EXIT_OK
									 : KHA_EXIT_DEGRADED;
	json_decref(root);
	return r;
}

/* ---- the daemon ---- */

static int reload(void *userdata, struct kha_vrrp_config *cfg, struct kha_diag *d)
{
	const struct kha_args_source *src = userdata; /* what a SIGHUP reads again */
	struct opts o = {.cfg = *cfg, .level = KHA_LOG_INFO, .format = KHA_LOG_LOGFMT};
	struct cmd_opts opts;
	struct kha_args a;

	cmd_opts_build(&opts, options, apply, &o);
	a = cmd_opts_args(&opts);
	if (kha_args_reapply(&a, &opts, src, d) != 0) {
		*cfg = o.cfg; /* the caller releases what was set */
		return -EINVAL;
	}
	kha_log_setup(o.level, o.format);
	*cfg = o.cfg;
	return 0;
}

int cmd_vip_main(int argc, char **argv)
{
	struct opts o = {.level = KHA_LOG_INFO, .format = KHA_LOG_LOGFMT};
	struct kha_diag d = {};
	struct kha_vrrp *v = NULL;
	struct kha_args_source src = {.argc = argc, .argv = argv};
	const char *missing = NULL;
	struct cmd_opts opts;
	struct kha_args a;
	int r, code;

	if (argc >= 2 && strcmp(argv[1], "status") == 0)
		return status_main(argc - 1, cmd_sub_argv(argv));
	cmd_opts_build(&opts, options, apply, &o);
	a = cmd_opts_args(&opts);
	if (kha_args_scan(&a, argc, argv, &src.config)) {
		usage(stdout);
		return KHA_EXIT_OK;
	}
	kha_vrrp_config_init(&o.cfg);
	code = kha_args_reapply(&a, &opts, &src, &d);
	if (code == 0 && optind < argc) {
		kha_diag_set(&d, EINVAL, "unexpected argument '%s'", argv[optind]);
		code = KHA_EXIT_USAGE;
	}
	if (code == 0) {
		missing = !o.have_interface ? "--interface"
			  : !o.have_vip	    ? "--vip"
			  : !o.have_vrid    ? "--vrid"
					    : NULL;
		if (missing) {
			kha_diag_set(&d, EINVAL, "%s is required", missing);
			code = KHA_EXIT_USAGE;
		}
	}
	if (code == 0 && o.cfg.npeers) {
		for (size_t i = 0; i < o.cfg.npeers; i++)
			if (o.cfg.peers[i] == o.cfg.vip) {
				kha_diag_set(&d, EINVAL, "--peer: the VIP cannot be a peer");
				code = KHA_EXIT_USAGE;
			}
	}
	if (code != 0) {
		fprintf(stderr, "kha vip: %s%s\n", d.msg,
			code == KHA_EXIT_USAGE ? " (run 'kha vip --help')" : "");
		kha_vrrp_config_release(&o.cfg);
		return code;
	}
	kha_log_setup(o.level, o.format);
	r = kha_vrrp_new(&o.cfg, &d, &v);
	kha_vrrp_config_release(&o.cfg);
	if (r < 0) {
		fprintf(stderr, "kha vip: %s\n", d.msg[0] ? d.msg : strerror(-r));
		return r == -ENOMEM ? KHA_EXIT_SOFTWARE : KHA_EXIT_CONFIG;
	}
	kha_vrrp_set_reload(v, reload, &src);
	r = kha_vrrp_run(v);
	kha_vrrp_free(v);
	if (r < 0) {
		fprintf(stderr, "kha vip: %s\n", strerror(-r));
		return KHA_EXIT_SOFTWARE;
	}
	return KHA_EXIT_OK;
}
