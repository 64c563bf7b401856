/* native/tests/check.h - the smallest test harness that does the job.
 *
 *	CHECK(cond, fmt, ...);    counts cond; prints file:line and the
 *	                          formatted message when it is false
 *	return check_report();    "N passed, N failed"; exit code 0 iff none failed
 *
 * Only the first CHECK_PRINT_MAX failures are printed, all are counted.
 */
#ifndef SYN_TEST_CHECK_H
#define SYN_TEST_CHECK_H

#include <stdio.h>

#define CHECK_PRINT_MAX 200

static unsigned long check_npass, check_nfail;

#define CHECK(cond, ...)                                                                  \
	do {                                                                              \
		if (cond) {                                                               \
			check_npass++;                                                    \
		} else if (check_nfail++ < CHECK_PRINT_MAX) {                             \
			fprintf(stderr, "%s:%d: FAIL (%s): ", __FILE__, __LINE__, #cond); \
			fprintf(stderr, __VA_ARGS__);                                     \
			fputc('\n', stderr);                                              \
		}                                                                         \
	} while (0)

static inline int check_report(void)
{
	if (check_nfail > CHECK_PRINT_MAX)
		fprintf(stderr, "(%lu more failures not shown)\n", check_nfail - CHECK_PRINT_MAX);
	printf("%lu passed, %lu failed\n", check_npass, check_nfail);
	return check_nfail ? 1 : 0;
}

#endif
