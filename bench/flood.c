/*
 * flood: a paced NTP client load generator for bench/serve_flood.py.
 *
 *   flood HOST PORT RATE SECONDS [GRACE_MS]
 *
 * Sends mode 3 requests to HOST:PORT (numeric IPv4 or IPv6, loopback only:
 * the script passes 127.0.0.1 or ::1) at RATE per second for SECONDS, then
 * waits up to GRACE_MS (default 300) for late replies, and prints one line:
 *
 *   FLOOD sent=.. recv=.. ... lat_p50=.. off_abs_p50=.. ...
 *
 * Every request is sent on its own with send(2), its transmit timestamp read
 * from CLOCK_REALTIME immediately before the call, so each reply's origin
 * gives T1 back (no per-request state here). Replies are read in batches with
 * recvmmsg(2) and T4 is the kernel's receive timestamp (SO_TIMESTAMPNS), so a
 * busy generator does not inflate the latency. This is the same method a
 * server uses (kernel receive stamp, clock read just before the send), so for
 * a server that does it perfectly the two one-way paths are alike and the
 * offset ((T2-T1)+(T3-T4))/2 is its timestamp error (client and server share
 * one clock). Latency is T4-T1 (round trip including the server's queueing).
 *
 * Pacing: the number of requests due is rate * elapsed (CLOCK_MONOTONIC);
 * at most BURST are sent before replies are drained again; when nothing is
 * due for a while the generator sleeps in ppoll with 1 ns timer slack.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef SO_TIMESTAMPNS
#define SO_TIMESTAMPNS 35
#endif
#ifndef SO_RXQ_OVFL
#define SO_RXQ_OVFL 40
#endif

#define NTP_UNIX_OFFSET 2208988800LL
#define NS 1000000000LL
#define BATCH 64
#define BURST 32
#define PKT 48

static int64_t now_ns(clockid_t c)
{
	struct timespec ts;
	clock_gettime(c, &ts);
	return (int64_t)ts.tv_sec * NS + ts.tv_nsec;
}

static uint64_t ntp64_from_ns(int64_t t)
{
	int64_t sec = t / NS, rem = t % NS;
	uint64_t frac = (((uint64_t)rem << 32) + NS / 2) / NS;
	return ((uint64_t)(sec + NTP_UNIX_OFFSET) << 32) + frac;
}

static int64_t ns_from_ntp64(uint64_t ts)
{
	int64_t sec = (int64_t)(ts >> 32) - NTP_UNIX_OFFSET;
	uint64_t frac = ts & 0xffffffffu;
	return sec * NS + (int64_t)((frac * NS + (1ULL << 31)) >> 32);
}

static void put64(unsigned char *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (unsigned char)v;
		v >>= 8;
	}
}

static uint64_t get64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static int cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* The q-quantile (0..1) of a sorted array. */
static int64_t quant(const int64_t *v, long n, double q)
{
	if (n <= 0)
		return 0;
	long i = (long)(q * (double)(n - 1) + 0.5);
	return v[i];
}

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: %s HOST PORT RATE SECONDS [GRACE_MS]\n", argv[0]);
		return 2;
	}
	const char *host = argv[1];
	int port = atoi(argv[2]);
	double rate = atof(argv[3]);
	double seconds = atof(argv[4]);
	int grace_ms = argc > 5 ? atoi(argv[5]) : 300;
	if (rate <= 0 || seconds <= 0) {
		fprintf(stderr, "flood: RATE and SECONDS must be positive\n");
		return 2;
	}

	struct sockaddr_storage ss;
	socklen_t sslen;
	memset(&ss, 0, sizeof ss);
	int family = strchr(host, ':') ? AF_INET6 : AF_INET;
	if (family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)port);
		if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
			goto badhost;
		sslen = sizeof *a;
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
			goto badhost;
		sslen = sizeof *a;
	}

	int fd = socket(family, SOCK_DGRAM, 0);
	if (fd < 0) {
		perror("flood: socket");
		return 1;
	}
	int one = 1, big = 16 << 20;
	setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
	setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof one);
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big) < 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
	if (connect(fd, (struct sockaddr *)&ss, sslen) < 0) {
		perror("flood: connect");
		return 1;
	}
	prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);

	long cap = (long)(rate * seconds * 1.05) + 1024;
	int64_t *lat = malloc(sizeof(int64_t) * cap);
	int64_t *off = malloc(sizeof(int64_t) * cap);
	int64_t *offabs = malloc(sizeof(int64_t) * cap);
	int64_t *req = malloc(sizeof(int64_t) * cap);
	int64_t *rep = malloc(sizeof(int64_t) * cap);
	if (!lat || !off || !offabs || !req || !rep) {
		fprintf(stderr, "flood: out of memory\n");
		return 1;
	}

	static unsigned char rbuf[BATCH][128];
	static char cbuf[BATCH][128];
	struct mmsghdr msgs[BATCH];
	struct iovec iov[BATCH];

	unsigned char pkt[PKT];
	memset(pkt, 0, sizeof pkt);
	pkt[0] = (0 << 6) | (4 << 3) | 3; /* LI 0, version 4, mode 3 */
	pkt[2] = 6;                        /* poll 2^6 */
	pkt[3] = (unsigned char)(-20);     /* precision */

	long sent = 0, recvd = 0, stored = 0, bad = 0, kod = 0, send_err = 0, late = 0;
	long no_ts = 0, recv_calls = 0;
	uint32_t client_drops = 0;
	int64_t start_real = now_ns(CLOCK_REALTIME);
	int64_t start = now_ns(CLOCK_MONOTONIC);
	int64_t dur = (int64_t)(seconds * 1e9);
	int64_t end = start + dur;
	int64_t grace_end = end + (int64_t)grace_ms * 1000000;
	int64_t last_rx = start;
	int64_t last_send_mono = start;
	int sending = 1;

	for (;;) {
		int64_t m = now_ns(CLOCK_MONOTONIC);
		int did = 0;
		if (sending) {
			if (m >= end) {
				sending = 0;
				last_rx = m;
			} else {
				long due = (long)((double)(m - start) * rate / 1e9) + 1 - sent;
				if (due > BURST)
					due = BURST;
				for (long i = 0; i < due; i++) {
					int64_t t1 = now_ns(CLOCK_REALTIME);
					put64(pkt + 40, ntp64_from_ns(t1));
					if (send(fd, pkt, PKT, 0) < 0) {
						if (errno == ECONNREFUSED) {
							/* the server is not there (yet): counts as sent and lost */
						} else {
							send_err++;
							break;
						}
					}
					sent++;
				}
				if (due > 0) {
					did = 1;
					last_send_mono = m;
				}
			}
		} else if (m >= grace_end || m - last_rx > 100000000LL) {
			break;
		}

		for (int i = 0; i < BATCH; i++) {
			iov[i].iov_base = rbuf[i];
			iov[i].iov_len = sizeof rbuf[i];
			memset(&msgs[i].msg_hdr, 0, sizeof msgs[i].msg_hdr);
			msgs[i].msg_hdr.msg_iov = &iov[i];
			msgs[i].msg_hdr.msg_iovlen = 1;
			msgs[i].msg_hdr.msg_control = cbuf[i];
			msgs[i].msg_hdr.msg_controllen = sizeof cbuf[i];
		}
		int n = recvmmsg(fd, msgs, BATCH, MSG_DONTWAIT, NULL);
		recv_calls++;
		if (n > 0) {
			did = 1;
			int64_t mnow = now_ns(CLOCK_MONOTONIC);
			last_rx = mnow;
			for (int i = 0; i < n; i++) {
				unsigned char *p = rbuf[i];
				int64_t t4 = 0;
				for (struct cmsghdr *c = CMSG_FIRSTHDR(&msgs[i].msg_hdr); c;
				     c = CMSG_NXTHDR(&msgs[i].msg_hdr, c)) {
					if (c->cmsg_level != SOL_SOCKET)
						continue;
					if (c->cmsg_type == SO_TIMESTAMPNS) {
						struct timespec ts;
						memcpy(&ts, CMSG_DATA(c), sizeof ts);
						t4 = (int64_t)ts.tv_sec * NS + ts.tv_nsec;
					} else if (c->cmsg_type == SO_RXQ_OVFL) {
						memcpy(&client_drops, CMSG_DATA(c), sizeof client_drops);
					}
				}
				if (!t4) {
					no_ts++;
					t4 = now_ns(CLOCK_REALTIME);
				}
				if (msgs[i].msg_len < PKT || (p[0] & 7) != 4) {
					bad++;
					continue;
				}
				int64_t t1 = ns_from_ntp64(get64(p + 24));
				if (t1 < start_real - NS || t1 > t4) {
					bad++;
					continue;
				}
				if (p[1] == 0) {
					kod++;
					continue;
				}
				int64_t t2 = ns_from_ntp64(get64(p + 32));
				int64_t t3 = ns_from_ntp64(get64(p + 40));
				recvd++;
				if (!sending)
					late++;
				if (stored < cap) {
					lat[stored] = t4 - t1;
					req[stored] = t2 - t1;
					rep[stored] = t4 - t3;
					int64_t o = ((t2 - t1) + (t3 - t4)) / 2;
					off[stored] = o;
					offabs[stored] = o < 0 ? -o : o;
					stored++;
				}
			}
		}
		if (!did) {
			/* Nothing due and nothing read: sleep until the next request is due
			 * (or a reply arrives), unless that is very soon. */
			int64_t wait;
			if (sending) {
				int64_t next = start + (int64_t)((double)(sent) * 1e9 / rate);
				wait = next - now_ns(CLOCK_MONOTONIC);
			} else {
				wait = 5000000;
			}
			if (wait > 20000) {
				struct pollfd pfd = {.fd = fd, .events = POLLIN};
				struct timespec to = {.tv_sec = 0, .tv_nsec = (long)(wait - 10000)};
				if (to.tv_nsec > 999999999)
					to.tv_nsec = 999999999;
				ppoll(&pfd, 1, &to, NULL);
			}
		}
	}
	int64_t elapsed = last_send_mono - start;
	if (elapsed <= 0)
		elapsed = 1;
	(void)recv_calls;

	qsort(lat, stored, sizeof *lat, cmp64);
	qsort(off, stored, sizeof *off, cmp64);
	qsort(offabs, stored, sizeof *offabs, cmp64);
	qsort(req, stored, sizeof *req, cmp64);
	qsort(rep, stored, sizeof *rep, cmp64);
	double secs = (double)dur / 1e9;
	printf("FLOOD target=%.0f seconds=%.3f sent=%ld recv=%ld loss=%.6f send_rate=%.1f resp_rate=%.1f "
	       "lat_p50=%lld lat_p99=%lld lat_max=%lld off_p50=%lld off_abs_p50=%lld off_abs_p99=%lld "
	       "req_p50=%lld rep_p50=%lld bad=%ld kod=%ld late=%ld send_err=%ld no_ts=%ld client_drops=%u\n",
	       rate, secs, sent, recvd, sent ? 1.0 - (double)recvd / (double)sent : 0.0, (double)sent / secs,
	       (double)recvd / secs, (long long)quant(lat, stored, 0.5), (long long)quant(lat, stored, 0.99),
	       (long long)(stored ? lat[stored - 1] : 0), (long long)quant(off, stored, 0.5),
	       (long long)quant(offabs, stored, 0.5), (long long)quant(offabs, stored, 0.99),
	       (long long)quant(req, stored, 0.5), (long long)quant(rep, stored, 0.5), bad, kod, late, send_err,
	       no_ts, client_drops);
	return 0;

badhost:
	fprintf(stderr, "flood: %s: not a numeric address\n", host);
	return 2;
}
