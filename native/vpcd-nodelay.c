/*
 * LD_PRELOAD shim for pcscd, used only by the test stack (scripts/pcsc-stack.mjs).
 *
 * Debian 12's vpcd (virtualsmartcard 0.8) writes each message to the card as two
 * send() calls (length, then body) on a socket without TCP_NODELAY. Nagle holds
 * the body until the card ACKs the header, and the card delays that ACK by 40 ms,
 * so every APDU costs ~44 ms. Fixed upstream in 0.9 (vsmartcard PR #252); until
 * Debian ships it, pcscd gets TCP_NODELAY on every INET socket it accepts or
 * connects. Needs no capabilities, unlike the loopback `quickack` route.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

static void nodelay(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	int one = 1;

	if (fd >= 0 && getsockname(fd, (struct sockaddr *)&ss, &len) == 0 &&
	    (ss.ss_family == AF_INET || ss.ss_family == AF_INET6))
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

int accept(int fd, struct sockaddr *addr, socklen_t *len)
{
	static int (*real)(int, struct sockaddr *, socklen_t *);
	if (!real)
		real = (int (*)(int, struct sockaddr *, socklen_t *))dlsym(RTLD_NEXT, "accept");
	int c = real(fd, addr, len);
	nodelay(c);
	return c;
}

int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
	static int (*real)(int, const struct sockaddr *, socklen_t);
	if (!real)
		real = (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "connect");
	int r = real(fd, addr, len);
	nodelay(fd);
	return r;
}
