/*
** Command-line parsing helpers; see args.h.
*/
#include "cli/args.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Prints "resnet: error: <message>" to stderr. */
void rn_cli_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("resnet: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* Finds the option called name (length len) in opts. */
static const rn_opt *find(const rn_opt *opts, const char *name, size_t len) {
    for (const rn_opt *o = opts; o->name; o++)
        if (strlen(o->name) == len && !strncmp(o->name, name, len)) return o;
    return NULL;
}

/* Parses the arguments against the option table; see args.h. */
int rn_args_parse(const char *cmd, int argc, char **argv, const rn_opt *opts) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) return 1;
        if (strncmp(a, "--", 2)) {
            rn_cli_error("%s: unexpected argument '%s' (see 'resnet %s --help')", cmd, a, cmd);
            return -1;
        }
        const char *eq = strchr(a + 2, '=');
        size_t len = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        const rn_opt *o = find(opts, a + 2, len);
        if (!o) {
            rn_cli_error("%s: unknown option '%.*s' (see 'resnet %s --help')", cmd, (int)len + 2, a, cmd);
            return -1;
        }
        if (o->flag) {
            if (eq) {
                rn_cli_error("%s: option --%s takes no value", cmd, o->name);
                return -1;
            }
            *o->flag = 1;
        } else if (eq) {
            *o->value = eq + 1;
        } else if (i + 1 < argc) {
            *o->value = argv[++i];
        } else {
            rn_cli_error("%s: option --%s needs a value", cmd, o->name);
            return -1;
        }
    }
    return 0;
}

/* Converts an integer option, checking [lo, hi]. */
int rn_args_int(const char *name, const char *text, long lo, long hi, long *out) {
    if (!text) return 0;
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (end == text || *end || errno || v < lo || v > hi) {
        rn_cli_error("--%s: '%s' is not an integer in [%ld, %ld]", name, text, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

/* Converts a finite floating-point option, checking [lo, hi]. */
int rn_args_float(const char *name, const char *text, double lo, double hi, double *out) {
    if (!text) return 0;
    char *end;
    double v = strtod(text, &end);
    if (end == text || *end || !isfinite(v) || v < lo || v > hi) {
        rn_cli_error("--%s: '%s' is not a finite number in [%g, %g]", name, text, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

/* Parses "H" or "HxW". */
int rn_args_size(const char *name, const char *text, int *h, int *w) {
    if (!text) return 0;
    char *end;
    long a = strtol(text, &end, 10), b = a;
    if (end != text && *end == 'x') {
        const char *p = end + 1;
        b = strtol(p, &end, 10);
        if (end == p) b = 0;
    }
    if (end == text || *end || a < 1 || b < 1 || a > 65536 || b > 65536) {
        rn_cli_error("--%s: '%s' is not a size like 224 or 160x224 (each in [1, 65536])", name, text);
        return -1;
    }
    *h = (int)a, *w = (int)b;
    return 0;
}

/* Builds the spec that --arch or the custom-network options describe. */
int rn_arch_spec(const rn_arch_args *a, rn_spec *spec) {
    rn_error err;
    rn_status st;
    long classes = -1, inch = -1;
    if (a->blocks || a->widths || a->block) {
        if (a->arch) {
            rn_cli_error("--arch cannot be combined with --blocks/--widths/--block");
            return -1;
        }
        st = rn_spec_custom(a->blocks, a->widths, a->block ? a->block : "basic", a->stem, spec, &err);
    } else {
        st = rn_spec_from_name(a->arch ? a->arch : "resnet18", spec, &err);
    }
    if (st) {
        rn_cli_error("%s", err.msg);
        return -1;
    }
    if (rn_args_int("classes", a->classes, 1, 1000000, &classes) ||
        rn_args_int("in-channels", a->in_channels, 1, 4096, &inch))
        return -1;
    double eps = spec->bn_eps, mom = spec->bn_momentum;
    if (rn_args_float("bn-eps", a->bn_eps, 1e-12, 1.0, &eps) || rn_args_float("bn-momentum", a->bn_momentum, 0.0, 1.0, &mom))
        return -1;
    spec->bn_eps = (float)eps, spec->bn_momentum = (float)mom;
    if (classes > 0) spec->classes = (int)classes;
    if (inch > 0) spec->in_channels = (int)inch;
    if (a->shortcut) {
        if (strcmp(a->shortcut, "A") && strcmp(a->shortcut, "B")) {
            rn_cli_error("--shortcut: '%s' must be A or B", a->shortcut);
            return -1;
        }
        spec->shortcut = a->shortcut[0];
    }
    if (a->stem && !(a->blocks || a->widths || a->block)) {
        rn_cli_error("--stem applies to custom networks (--blocks/--widths/--block)");
        return -1;
    }
    return 0;
}
