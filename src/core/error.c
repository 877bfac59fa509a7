/*
** Error messages and the version string.
*/
#include "error.h"

#include <stdarg.h>
#include <stdio.h>

/* Formats a message into err (if not NULL) and returns code. */
rn_status rn_fail(rn_error *err, rn_status code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

/* Returns the library version, so programs linked against a shared
** libresnet can tell which one they got. */
const char *rn_version(void) { return RN_VERSION; }

/* A short English name of a status code, for messages and logs. */
const char *rn_status_name(rn_status code) {
    static const char *names[] = {"ok", "bad argument", "I/O error", "malformed file", "out of memory",
                                  "file does not fit the model", "unsupported by this CPU"};
    return code >= RN_OK && code <= RN_ERR_UNSUPPORTED ? names[code] : "unknown status";
}
