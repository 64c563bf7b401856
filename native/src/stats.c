/* native/src/stats.c - duration histograms and summing workers' counters. */
#include "engine.h"

/* Upper bounds in microseconds: 1 ms .. 60 s, roughly x2.5 apart. */
static const uint64_t stats_bounds[SYN_HIST_BUCKETS] = {
	1000,   2500,   5000,    10000,   25000,   50000,    100000,
	250000, 500000, 1000000, 2500000, 5000000, 10000000, 60000000,
};

void syn_stats_buckets(uint64_t *bounds_us, uint32_t n)
{
	uint32_t i;

	for (i = 0; i < n && i < SYN_HIST_BUCKETS; i++)
		bounds_us[i] = stats_bounds[i];
}

/* Count one observation: per bucket (not cumulative; syn_engine_stats()
 * makes them cumulative), plus count and sum. */
void syn_stats_observe(uint64_t *hist, uint64_t *count, uint64_t *sum, uint64_t us)
{
	uint32_t i = 0;

	while (i < SYN_HIST_BUCKETS && us > stats_bounds[i])
		i++;
	if (i < SYN_HIST_BUCKETS)
		hist[i]++;
	(*count)++;
	*sum += us;
}
