/* SPDX-License-Identifier: MIT */
/*
 * Interface addresses over rtnetlink (libmnl): the one home of the RTM_NEWADDR / RTM_DELADDR
 * message that kha vip (the VIP), kha bgp (the service address) and kha proxy --mode nat (the
 * entry address) each put on an interface, and of the request-and-wait-for-the-ack exchange.
 */
#ifndef KHA_RTNL_H
#define KHA_RTNL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kha/common.h"

struct mnl_socket;
struct nlmsghdr;

/* One interface address, as an RTM_NEWADDR / RTM_DELADDR message carries it. */
struct kha_rtnl_addr {
	int family;	     /* AF_INET or AF_INET6 */
	const void *addr;    /* 4 or 16 bytes, network order (borrowed) */
	unsigned prefixlen;  /* 0-32 or 0-128 */
	unsigned ifindex;    /* the interface */
	const char *label;   /* IFA_LABEL, IPv4 only (`ip addr` shows whose address it is); NULL:
			      * none */
	bool local_only;     /* IFA_LOCAL only, no IFA_ADDRESS: matches the address whatever its
			      * prefix length (a removal of an address added by someone else) */
	bool nodad;	     /* IPv6: IFA_F_NODAD (an address several hosts hold on purpose) */
	unsigned lifetime_s; /* RTM_NEWADDR: valid and preferred lifetime in seconds; 0: forever */
};

/* Size of a buffer that always holds the message kha_rtnl_addr_msg builds. */
#define KHA_RTNL_ADDR_MSG_SIZE 256

/*
 * Builds the RTM_NEWADDR or RTM_DELADDR (type) message for a in buf (at least
 * KHA_RTNL_ADDR_MSG_SIZE bytes, aligned for a struct nlmsghdr), with nlmsg_flags = flags
 * (NLM_F_CREATE | NLM_F_EXCL, NLM_F_REPLACE, ...; the request and ack flags are added by
 * kha_rtnl_request). Returns the message, inside buf.
 */
struct nlmsghdr *kha_rtnl_addr_msg(void *buf, uint16_t type, uint16_t flags,
				   const struct kha_rtnl_addr *a);

/*
 * Sends nlh as a request that asks for an ack (NLM_F_REQUEST | NLM_F_ACK, sequence number
 * ++*seq) on nl, and waits for the kernel's answer. Returns 0, or the kernel's negative errno
 * (-EEXIST, -EADDRNOTAVAIL, -EPERM, ...) or the socket's.
 */
int kha_rtnl_request(struct mnl_socket *nl, struct nlmsghdr *nlh, uint32_t *seq) KHA_WUR;

#endif
