// SPDX-License-Identifier: MIT
/*
 * Kubernetes discovery for kha proxy: lib/kube's blocking EndpointSlice watch in a thread of its
 * own, delivering each backend set through kha_proxy_set_discovered() (the thread-safe mailbox
 * of the control loop). Membership only: health always comes from the proxy's checks.
 */
#include <pthread.h>
#include <string.h>
#include <sys/eventfd.h>

#include "kha/kube.h"
#include "kha/log.h"
#include "kha/proxy.h"
#include "kha/banned.h"

struct kha_proxy_discovery {
	struct kha_proxy *p;
	struct kha_kube_client *client;
	int stop_fd;
	pthread_t thread;
	bool started;
};

static void on_set(const struct kha_kube_endpoint_set *set, void *userdata)
{
	struct kha_proxy_discovery *disc = userdata;
	struct kha_proxy_spec *specs =
		calloc(set->n_endpoints ? set->n_endpoints : 1, sizeof(*specs));
	size_t n = 0;

	if (!specs) {
		kha_error("discovery: out of memory", "endpoints=%zu", set->n_endpoints);
		return;
	}
	for (size_t i = 0; i < set->n_endpoints; i++) {
		snprintf(specs[n].addr, sizeof(specs[n].addr), "%s", set->endpoints[i].addr);
		specs[n++].weight = 1;
	}
	kha_debug("discovery: endpoints", "n=%zu empty=%d serving_fallback=%d", n, set->empty,
		  set->serving_fallback);
	if (kha_proxy_set_discovered(disc->p, specs, n) < 0)
		kha_error("discovery: cannot hand the set over", "endpoints=%zu", n);
	free(specs);
}

static void on_error(int err, const char *msg, uint64_t retry_in_us, void *userdata)
{
	char q[512];

	(void)userdata;
	kha_warn("discovery failed, keeping the current backends", "error=%s retry_in_ms=%llu",
		 kha_log_quote(q, sizeof(q), msg && *msg ? msg : strerror(-err)),
		 (unsigned long long)(retry_in_us / 1000));
}

static void *run(void *arg)
{
	struct kha_proxy_discovery *disc = arg;
	struct kha_kube_discovery_opts opts = {
		.on_set = on_set,
		.on_error = on_error,
		.userdata = disc,
	};
	struct kha_diag d = {};

	if (kha_kube_discovery_run(disc->client, &opts, disc->stop_fd, &d) < 0)
		kha_error("discovery stopped", "error=%s", KHA_LOGQ(d.msg));
	return NULL;
}

int kha_proxy_discovery_new(const char *kubeconfig, struct kha_diag *d,
			    struct kha_proxy_discovery **ret)
{
	struct kha_kube_load_opts lo = {.kubeconfig = kubeconfig};
	struct kha_kube_config *cfg = NULL;
	struct kha_proxy_discovery *disc;
	int r;

	r = kha_kube_config_load(&lo, &cfg, d);
	if (r < 0)
		return r;
	disc = calloc(1, sizeof(*disc));
	if (!disc) {
		kha_kube_config_free(cfg);
		return kha_diag_set(d, ENOMEM, "out of memory");
	}
	disc->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (disc->stop_fd < 0) {
		r = kha_diag_set(d, errno, "eventfd: %s", strerror(errno));
		goto fail;
	}
	r = kha_kube_client_new(cfg, &disc->client, d);
	if (r < 0)
		goto fail;
	kha_kube_client_set_stop_fd(disc->client, disc->stop_fd);
	kha_kube_config_free(cfg);
	*ret = disc;
	return 0;
fail:
	kha_kube_config_free(cfg);
	kha_proxy_discovery_stop(disc);
	return r;
}

int kha_proxy_discovery_start(struct kha_proxy_discovery *disc, struct kha_proxy *p,
			      struct kha_diag *d)
{
	int r;

	disc->p = p;
	r = -pthread_create(&disc->thread, NULL, run, disc);
	if (r < 0)
		return kha_diag_set(d, -r, "cannot start the discovery thread: %s", strerror(-r));
	disc->started = true;
	kha_info("discovery started", "server=%s", KHA_LOGQ(kha_kube_client_server(disc->client)));
	return 0;
}

void kha_proxy_discovery_stop(struct kha_proxy_discovery *disc)
{
	uint64_t one = 1;

	if (!disc)
		return;
	if (disc->started) {
		kha_ignore(write(disc->stop_fd, &one, sizeof(one)));
		pthread_join(disc->thread, NULL);
	}
	kha_kube_client_free(disc->client);
	if (disc->stop_fd >= 0)
		close(disc->stop_fd);
	free(disc);
}
