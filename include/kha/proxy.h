/* SPDX-License-Identifier: MIT */
/*
 * kha proxy: a TCP (layer 4) load balancer for kube-apiservers, node-local or external.
 * docs/proxy.md says how to run it, docs/internals/proxy.md how it works.
 *
 * Threads: kha_proxy_run() runs the control loop (signals, health checks, membership, admin
 * HTTP) on the calling thread, and `workers` data threads, each with its own event loop and its
 * own SO_REUSEPORT listener. Health state is decided once, on the control thread, and published
 * to the workers with atomic stores; backend sets are published as immutable tables.
 *
 * Lifecycle: kha_proxy_config_init() -> fill -> kha_proxy_new() (validates, binds every
 * listening socket, loads files: nothing runs yet, so a bad input fails before anything
 * started) -> kha_proxy_run() (returns after a graceful stop on SIGTERM/SIGINT) ->
 * kha_proxy_free().
 */
#ifndef KHA_PROXY_H
#define KHA_PROXY_H

#include "kha/diag.h"
#include "kha/proxy-backends.h"
#include "kha/proxy-health.h"

#define KHA_PROXY_MAX_WORKERS 64

enum kha_proxy_check {
	KHA_PROXY_CHECK_HTTPS,
	KHA_PROXY_CHECK_HTTP,
	KHA_PROXY_CHECK_TCP,
};

enum kha_proxy_mode {
	KHA_PROXY_MODE_USERSPACE, /* kha's workers accept and copy the bytes */
	KHA_PROXY_MODE_NAT,	  /* the kernel DNATs the entry (nftables table kha writes) */
};

struct kha_proxy_config {
	enum kha_proxy_mode mode;
	char listen[KHA_PROXY_ADDR_MAX];       /* "127.0.0.1:7443" */
	struct kha_proxy_spec_list seeds;      /* --backend: static seeds */
	char *backends_file;		       /* --backends-file, or NULL */
	char *state_file;		       /* --state-file, or NULL */
	char metrics_addr[KHA_PROXY_ADDR_MAX]; /* "" disables the admin server */
	enum kha_proxy_balance balance;
	unsigned workers;
	unsigned retries; /* further backends tried by one client connection */

	uint64_t connect_timeout_us;
	uint64_t first_byte_timeout_us; /* 0 disables first-byte replay */
	size_t replay_max;		/* client bytes kept until the backend's first byte */
	uint64_t idle_timeout_us;	/* 0: none */
	uint64_t drain_timeout_us;
	uint64_t tcp_user_timeout_us; /* backend sockets; 0: kernel default */
	uint64_t keepalive_idle_us;   /* backend sockets; 0: no keep-alive */
	uint64_t keepalive_interval_us;
	unsigned keepalive_count;
	uint64_t client_keepalive_idle_us; /* client sockets (same interval, count); 0: off */
	unsigned max_conns; /* client connections at once; 0: from the descriptor limit */

	enum kha_proxy_check check;
	char check_path[256];
	uint64_t check_interval_us;
	uint64_t check_fast_interval_us; /* while a state change is pending */
	uint64_t check_timeout_us;
	unsigned fall, rise;
	char *check_cacert, *check_cert, *check_key; /* owned strings or NULL */
	bool check_insecure;
	bool close_on_dead;

	/* --mode nat */
	bool nat_prerouting; /* also DNAT forwarded traffic (pods) */
	char nat_name[16];   /* nftables table and dummy interface: "kha-proxy" */
};

struct kha_proxy;

/* Fills the defaults (docs/proxy.md lists them). */
void kha_proxy_config_init(struct kha_proxy_config *c);
/*
 * The defaults of a mode: user space as kha_proxy_config_init(); NAT mode balances randomly and
 * checks faster (a dead or frozen backend leaves the table within 1.5 s: no retry or first-byte
 * replay covers it there).
 */
void kha_proxy_config_init_mode(struct kha_proxy_config *c, enum kha_proxy_mode mode);
/* Frees the owned strings and lists. */
void kha_proxy_config_release(struct kha_proxy_config *c);
/*
 * The client connections the proxy serves at once: cfg->max_conns, or when 0 what the
 * descriptor limit (RLIMIT_NOFILE) allows with two descriptors per connection (client and
 * backend) after a reserve of max(min(128, limit / 4), limit / 16) for the admin server, the health checks,
 * discovery and logs. Never 0.
 */
unsigned kha_proxy_max_conns(const struct kha_proxy_config *cfg);

/*
 * Validates cfg (copied), blocks SIGTERM, SIGINT and SIGHUP in the calling thread (call it before
 * starting other threads, so they inherit the mask), loads the state and backends files, binds
 * the listeners and the admin server. Returns 0, or -EINVAL (bad configuration), -ENOENT/-EACCES
 * (unreadable file), -EADDRINUSE (port taken) ... with d saying which.
 */
int kha_proxy_new(const struct kha_proxy_config *cfg, struct kha_diag *d,
		  struct kha_proxy **ret) KHA_WUR;
/* Runs until a graceful stop completes. Returns 0 or -errno. */
int kha_proxy_run(struct kha_proxy *p) KHA_WUR;
void kha_proxy_free(struct kha_proxy *p);

/*
 * Thread-safe: replaces the set of backends found by discovery (lib/kube) with specs[0..n).
 * The proxy copies them, saves them to the state file and merges them on its control thread;
 * an empty set never empties the proxy (the seeds are used). Returns 0 or -ENOMEM.
 */
int kha_proxy_set_discovered(struct kha_proxy *p, const struct kha_proxy_spec *specs,
			     size_t n) KHA_WUR;
/*
 * Reloading (SIGHUP). fn fills cfg (initialised by kha_proxy_config_init) with the configuration
 * to apply, read again from where the first one came from (the config file, then the command
 * line), and returns 0 or -errno with d saying what is wrong; the proxy then applies it with
 * kha_proxy_reconfigure(). Without fn, SIGHUP re-reads the backends file only.
 */
typedef int (*kha_proxy_reload_fn)(void *userdata, struct kha_proxy_config *cfg,
				   struct kha_diag *d);
void kha_proxy_set_reload(struct kha_proxy *p, kha_proxy_reload_fn fn, void *userdata);

/*
 * Control thread only (a reload callback, or before kha_proxy_run): applies cfg to the running
 * proxy without dropping a connection. Seeds, weights, balancing, timeouts, keep-alive and the
 * health checks take effect at once (the check files are read again and every backend is checked
 * at once); the backends file is re-read (and watched anew when its path changed). listen,
 * workers and metrics-addr need a restart: they are kept, with a warning. An invalid cfg changes
 * nothing. Returns 0 or -EINVAL/-ENOENT/-EACCES/-ENOMEM with d saying why.
 */
int kha_proxy_reconfigure(struct kha_proxy *p, const struct kha_proxy_config *cfg,
			  struct kha_diag *d) KHA_WUR;

/* Thread-safe: asks for a graceful stop, as SIGTERM does. */
void kha_proxy_stop(struct kha_proxy *p);

/*
 * Kubernetes discovery (lib/kube) feeding a proxy: a thread that watches the EndpointSlices of
 * service default/kubernetes and hands every new set to kha_proxy_set_discovered(). The
 * kubeconfig (NULL: $KUBECONFIG, then in-cluster) may point at the proxy's own listen address:
 * the seeds and the state file carry the first connection.
 * _new loads the kubeconfig (errors: -ENOENT, -EACCES, -EINVAL bad content) and starts nothing;
 * _start runs the thread (call it after kha_proxy_new(): the thread inherits the blocked
 * signals); _stop joins it and frees everything (before kha_proxy_free()).
 */
struct kha_proxy_discovery;
int kha_proxy_discovery_new(const char *kubeconfig, struct kha_diag *d,
			    struct kha_proxy_discovery **ret) KHA_WUR;
int kha_proxy_discovery_start(struct kha_proxy_discovery *disc, struct kha_proxy *p,
			      struct kha_diag *d) KHA_WUR;
/* Stops the thread and frees everything. NULL is a no-op. */
void kha_proxy_discovery_stop(struct kha_proxy_discovery *disc);

#endif
