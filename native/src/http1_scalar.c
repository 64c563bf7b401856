/* native/src/http1_scalar.c - the parser for CPUs without SSE4.2. */
#include "http1_int.h"

#define h1_scan_target h1_scalar_scan_target
#define h1_scan_name   h1_scalar_scan_name
#define h1_scan_value  h1_scalar_scan_value
#define H1_IMPL        syn_h1_impl_scalar
#include "http1_parse.h"
