/* native/tests/test_format_ip.c - the client's address as text
 * (syn_format_ip() in native/src/proxy.c), for X-Forwarded-For and the
 * access log.
 *
 * IPv4 addresses (plain and IPv4-mapped IPv6) are written without
 * inet_ntop(); every one of them must come out as inet_ntop() writes it.
 * Checked on edge values of each byte and on random addresses from a fixed
 * seed; IPv6 and an unknown family are checked by hand.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "check.h"

static void check_v4(const uint8_t a[4])
{
	struct sockaddr_storage ss4 = {0}, ss6 = {0};
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss4;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss6;
	char want[INET6_ADDRSTRLEN], got[INET6_ADDRSTRLEN];

	s4->sin_family = AF_INET;
	memcpy(&s4->sin_addr, a, 4);
	inet_ntop(AF_INET, a, want, sizeof(want));
	memset(got, 'x', sizeof(got));
	syn_format_ip(&ss4, got, sizeof(got));
	CHECK(!strcmp(got, want), "AF_INET: %s, want %s", got, want);

	s6->sin6_family = AF_INET6;
	s6->sin6_addr.s6_addr[10] = s6->sin6_addr.s6_addr[11] = 0xff;
	memcpy(&s6->sin6_addr.s6_addr[12], a, 4);
	memset(got, 'x', sizeof(got));
	syn_format_ip(&ss6, got, sizeof(got));
	CHECK(!strcmp(got, want), "IPv4-mapped: %s, want %s", got, want);
}

int main(void)
{
	static const uint8_t edges[] = {0, 1, 9, 10, 11, 99, 100, 101, 109, 110, 199, 200, 255};
	struct sockaddr_storage ss = {0};
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	char got[INET6_ADDRSTRLEN];
	size_t i, j;

	for (i = 0; i < sizeof(edges); i++)
		for (j = 0; j < sizeof(edges); j++) {
			uint8_t a[4] = {edges[i], edges[j], edges[(i + j) % sizeof(edges)],
					edges[j]};

			check_v4(a);
		}
	srand(20261126);
	for (i = 0; i < 100000; i++) {
		uint8_t a[4] = {(uint8_t)rand(), (uint8_t)rand(), (uint8_t)rand(), (uint8_t)rand()};

		check_v4(a);
	}

	s6->sin6_family = AF_INET6;
	inet_pton(AF_INET6, "2001:db8::1:0:0:1", &s6->sin6_addr);
	syn_format_ip(&ss, got, sizeof(got));
	CHECK(!strcmp(got, "2001:db8::1:0:0:1"), "IPv6: %s", got);

	ss.ss_family = AF_UNIX;
	syn_format_ip(&ss, got, sizeof(got));
	CHECK(!strcmp(got, "unknown"), "AF_UNIX: %s", got);
	return check_report();
}
