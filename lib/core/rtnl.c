/* SPDX-License-Identifier: MIT */
/* Interface addresses over rtnetlink: see kha/rtnl.h. */
#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/if_addr.h>
#include <linux/rtnetlink.h>
#include <string.h>
#include <sys/socket.h>

#include "kha/rtnl.h"

struct nlmsghdr *kha_rtnl_addr_msg(void *buf, uint16_t type, uint16_t flags,
				   const struct kha_rtnl_addr *a)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct ifaddrmsg *ifa;
	size_t alen = a->family == AF_INET ? 4 : 16;

	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = flags;
	ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
	ifa->ifa_family = (uint8_t)a->family;
	ifa->ifa_prefixlen = (uint8_t)a->prefixlen;
	ifa->ifa_scope = RT_SCOPE_UNIVERSE;
	ifa->ifa_index = a->ifindex;
	if (a->family == AF_INET6 && a->nodad)
		ifa->ifa_flags = IFA_F_NODAD;
	mnl_attr_put(nlh, IFA_LOCAL, alen, a->addr);
	if (!a->local_only)
		mnl_attr_put(nlh, IFA_ADDRESS, alen, a->addr);
	if (a->family == AF_INET && a->label)
		mnl_attr_put_strz(nlh, IFA_LABEL, a->label);
	if (type == RTM_NEWADDR && a->lifetime_s) {
		struct ifa_cacheinfo ci = {.ifa_prefered = a->lifetime_s,
					   .ifa_valid = a->lifetime_s};

		mnl_attr_put(nlh, IFA_CACHEINFO, sizeof(ci), &ci);
	}
	return nlh;
}

int kha_rtnl_request(struct mnl_socket *nl, struct nlmsghdr *nlh, uint32_t *seq)
{
	char buf[8192]; /* an error ack quotes the request; MNL_SOCKET_BUFFER_SIZE is not a constant */
	unsigned portid = mnl_socket_get_portid(nl);
	ssize_t n;
	int r;

	nlh->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
	nlh->nlmsg_seq = ++*seq;
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	for (;;) {
		n = mnl_socket_recvfrom(nl, buf, sizeof(buf));
		if (n < 0)
			return -errno;
		r = mnl_cb_run(buf, (size_t)n, *seq, portid, NULL, NULL);
		if (r < 0)
			return -errno;
		if (r == MNL_CB_STOP)
			return 0;
	}
}
