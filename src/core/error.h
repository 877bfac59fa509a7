/*
** Error reporting inside the library: rn_fail fills the caller's rn_error
** (when there is one) and returns the code, so a failing path reads
**     return rn_fail(err, RN_ERR_FORMAT, "%s: header is not valid JSON", path);
*/
#ifndef RN_ERROR_H
#define RN_ERROR_H

#include "resnet.h"

#if defined(__GNUC__)
#define RN_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define RN_PRINTF(a, b)
#endif

/* Formats a message into err (if not NULL) and returns code. */
rn_status rn_fail(rn_error *err, rn_status code, const char *fmt, ...) RN_PRINTF(3, 4);

#endif
