// SPDX-License-Identifier: MIT
/* Unit tests of the Prometheus exposition: formats, families, histograms, collectors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "kha/metrics.h"
#include "kha/banned.h"

static void test_counter_and_gauge_exposition(void **state)
{
	struct kha_metrics *m;
	struct kha_metric *c1, *c2, *g;
	char *text;
	size_t len;

	(void)state;
	assert_int_equal(kha_metrics_new(&m), 0);
	assert_int_equal(kha_metrics_register(m, KHA_METRIC_COUNTER, "kha_x_total", "Things done.",
					      "kind=\"a\"", NULL, 0, &c1),
			 0);
	assert_int_equal(kha_metrics_register(m, KHA_METRIC_GAUGE, "kha_up", "Up.\nReally", NULL,
					      NULL, 0, &g),
			 0);
	/* same family registered later: still written together with its first series */
	assert_int_equal(kha_metrics_register(m, KHA_METRIC_COUNTER, "kha_x_total", "ignored",
					      "kind=\"b\"", NULL, 0, &c2),
			 0);
	kha_metric_add(c1, 3);
	kha_metric_add(c1, 2);
	kha_metric_add(c2, 1);
	kha_metric_set(g, 0.5);
	assert_int_equal(kha_metrics_render(m, &text, &len), 0);
	assert_int_equal(strlen(text), len);
	assert_string_equal(text, "# HELP kha_x_total Things done.\n"
				  "# TYPE kha_x_total counter\n"
				  "kha_x_total{kind=\"a\"} 5\n"
				  "kha_x_total{kind=\"b\"} 1\n"
				  "# HELP kha_up Up.\\nReally\n"
				  "# TYPE kha_up gauge\n"
				  "kha_up 0.5\n");
	free(text);
	kha_metrics_free(m);
}

static void test_histogram_buckets_are_cumulative(void **state)
{
	static const double bounds[] = {0.01, 0.1, 1};
	struct kha_histogram a, b;
	char *text = NULL;
	size_t len;
	FILE *out = open_memstream(&text, &len);

	(void)state;
	assert_int_equal(kha_histogram_init(&a, bounds, 3), 0);
	assert_int_equal(kha_histogram_init(&b, bounds, 3), 0);
	kha_histogram_observe(&a, 0.005);
	kha_histogram_observe(&a, 0.1); /* le is inclusive */
	kha_histogram_observe(&b, 5);
	kha_histogram_merge(&a, &b);
	kha_metrics_write_histogram(out, "lat_seconds", "backend=\"x\"", &a);
	fclose(out);
	assert_string_equal(text, "lat_seconds_bucket{backend=\"x\",le=\"0.01\"} 1\n"
				  "lat_seconds_bucket{backend=\"x\",le=\"0.1\"} 2\n"
				  "lat_seconds_bucket{backend=\"x\",le=\"1\"} 2\n"
				  "lat_seconds_bucket{backend=\"x\",le=\"+Inf\"} 3\n"
				  "lat_seconds_sum{backend=\"x\"} 5.105\n"
				  "lat_seconds_count{backend=\"x\"} 3\n");
	free(text);
	kha_histogram_release(&a);
	kha_histogram_release(&b);
}

static void collect(FILE *out, void *userdata)
{
	const uint64_t *per_worker = userdata;
	kha_metrics_write_header(out, "kha_conn_total", "Connections.", KHA_METRIC_COUNTER);
	kha_metrics_write_sample(out, "kha_conn_total", NULL,
				 (double)(per_worker[0] + per_worker[1]));
}

static void test_collector_sums_at_scrape(void **state)
{
	uint64_t per_worker[2] = {7, 5};
	struct kha_metrics *m;
	struct kha_metric *h;
	static const double bounds[] = {1};
	char *text;

	(void)state;
	assert_int_equal(kha_metrics_new(&m), 0);
	assert_int_equal(
		kha_metrics_register(m, KHA_METRIC_HISTOGRAM, "h", "H.", NULL, bounds, 1, &h), 0);
	kha_metric_observe(h, 2);
	assert_int_equal(kha_metrics_add_collector(m, collect, per_worker), 0);
	assert_int_equal(kha_metrics_render(m, &text, NULL), 0);
	assert_non_null(strstr(text, "h_bucket{le=\"1\"} 0\nh_bucket{le=\"+Inf\"} 1\nh_sum 2\n"
				     "h_count 1\n"));
	assert_non_null(strstr(text, "# TYPE kha_conn_total counter\nkha_conn_total 12\n"));
	free(text);
	kha_metrics_free(m);
}

static void test_label_escape(void **state)
{
	char buf[16];

	(void)state;
	assert_string_equal(kha_metrics_escape(buf, sizeof(buf), "a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
	/* truncation never splits an escape */
	assert_string_equal(kha_metrics_escape(buf, 4, "ab\"c"), "ab");
	assert_string_equal(kha_metrics_escape(buf, sizeof(buf), "10.0.0.1:6443"), "10.0.0.1:6443");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_counter_and_gauge_exposition),
		cmocka_unit_test(test_histogram_buckets_are_cumulative),
		cmocka_unit_test(test_collector_sums_at_scrape),
		cmocka_unit_test(test_label_escape),
	};
	return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
