/* native/src/abi.c - the small entry points of syn_abi.h that belong to no
 * other module. */
#include "syn/http1.h"
#include "syn_abi.h"

#ifndef SYN_VERSION
#define SYN_VERSION "0.1.0"
#endif

int syn_abi_version(void)
{
	return SYN_ABI_VERSION;
}

const char *syn_native_version(void)
{
	return SYN_VERSION;
}

int syn_abi_parse_request(const char *buf, size_t len, int *status, const char **reason)
{
	struct syn_h1_request req;
	int rc = syn_h1_parse_request(buf, len, &req);

	*status = rc == SYN_PARSE_ERR ? syn_h1_err_status(req.h.error) : 0;
	*reason = rc == SYN_PARSE_ERR ? syn_h1_err_text(req.h.error) : "";
	return rc;
}
