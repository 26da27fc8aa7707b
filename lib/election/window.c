// SPDX-License-Identifier: MIT
/* Maintenance windows: "Mon..Fri 02:00-05:00; Sat,Sun 00:00-24:00" (grammar in election.h). */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "kha/election.h"
#include "kha/banned.h"

static const char *const day_names[7] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

struct cursor {
	const char *s; /* the whole text, for positions in messages */
	const char *p; /* where we are */
	struct kha_diag *d;
};

static int fail(struct cursor *c, const char *what)
{
	return kha_diag_set(c->d, EINVAL, "window '%s': %s at offset %d", c->s, what,
			    (int)(c->p - c->s));
}

static void skip_spaces(struct cursor *c)
{
	while (*c->p == ' ' || *c->p == '\t')
		c->p++;
}

static int parse_day(struct cursor *c, int *ret)
{
	for (int i = 0; i < 7; i++) {
		if (strncasecmp(c->p, day_names[i], 3) == 0 && !isalpha((unsigned char)c->p[3])) {
			*ret = i;
			c->p += 3;
			return 0;
		}
	}
	return fail(c, "expected a day (Mon, Tue, Wed, Thu, Fri, Sat, Sun)");
}

/* DAYS := DAYSPEC ("," DAYSPEC)* ; DAYSPEC := DAY [".." DAY] */
static int parse_days(struct cursor *c, uint8_t *ret)
{
	uint8_t days = 0;

	for (;;) {
		int a, b;

		if (parse_day(c, &a) < 0)
			return -EINVAL;
		b = a;
		if (c->p[0] == '.' && c->p[1] == '.') {
			c->p += 2;
			if (parse_day(c, &b) < 0)
				return -EINVAL;
		}
		/* a range wraps the week: Fri..Mon = Fri Sat Sun Mon */
		for (int i = a;; i = (i + 1) % 7) {
			days |= (uint8_t)(1u << i);
			if (i == b)
				break;
		}
		if (*c->p != ',')
			break;
		c->p++;
	}
	*ret = days;
	return 0;
}

static int parse_time(struct cursor *c, bool end, uint16_t *ret)
{
	int h, m;

	if (!isdigit((unsigned char)c->p[0]) || !isdigit((unsigned char)c->p[1]) ||
	    c->p[2] != ':' || !isdigit((unsigned char)c->p[3]) || !isdigit((unsigned char)c->p[4]))
		return fail(c, "expected a time HH:MM");
	h = (c->p[0] - '0') * 10 + (c->p[1] - '0');
	m = (c->p[3] - '0') * 10 + (c->p[4] - '0');
	if (m > 59 || h > 24 || (h == 24 && (m != 0 || !end)))
		return fail(c, "time out of range (00:00 to 23:59, or 24:00 as an end)");
	c->p += 5;
	*ret = (uint16_t)(h * 60 + m);
	return 0;
}

int kha_lock_window_parse(const char *s, struct kha_lock_window_set *ret, struct kha_diag *d)
{
	struct cursor c = {.s = s, .p = s, .d = d};
	struct kha_lock_window_set ws = {};

	for (;;) {
		struct kha_lock_window w = {.days = 0x7f};

		skip_spaces(&c);
		if (ws.n == KHA_LOCK_WINDOW_MAX)
			return fail(&c, "too many windows");
		if (isalpha((unsigned char)*c.p)) {
			if (parse_days(&c, &w.days) < 0)
				return -EINVAL;
			if (*c.p != ' ' && *c.p != '\t')
				return fail(&c, "expected a space between the days and the hours");
			skip_spaces(&c);
		}
		if (parse_time(&c, false, &w.start_min) < 0)
			return -EINVAL;
		if (*c.p != '-')
			return fail(&c, "expected '-' between the start and the end");
		c.p++;
		if (parse_time(&c, true, &w.end_min) < 0)
			return -EINVAL;
		if (w.end_min == w.start_min)
			return fail(&c, "empty window (the end equals the start)");
		ws.w[ws.n++] = w;
		skip_spaces(&c);
		if (*c.p == '\0')
			break;
		if (*c.p != ';')
			return fail(&c, "expected ';' between windows");
		c.p++;
	}
	*ret = ws;
	return 0;
}

bool kha_lock_window_contains(const struct kha_lock_window_set *ws, const struct tm *tm)
{
	int now = tm->tm_hour * 60 + tm->tm_min, wday = tm->tm_wday, yday = (wday + 6) % 7;

	for (size_t i = 0; i < ws->n; i++) {
		const struct kha_lock_window *w = &ws->w[i];

		if (w->end_min > w->start_min) {
			if ((w->days & (1u << wday)) && now >= w->start_min && now < w->end_min)
				return true;
		} else {
			/* crosses midnight: the evening part today, the morning part of a window
			 * that started yesterday */
			if ((w->days & (1u << wday)) && now >= w->start_min)
				return true;
			if ((w->days & (1u << yday)) && now < w->end_min)
				return true;
		}
	}
	return false;
}
