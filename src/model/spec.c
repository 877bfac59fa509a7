/*
** Architecture names and custom stage lists -> rn_spec.
**
** The named networks are the papers' and torchvision's; a custom network
** is a block kind, a stem and two lists (blocks per stage, widths).
*/
#include "model/model.h"
#include "core/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Fills the defaults every spec starts from. */
static void spec_defaults(rn_spec *s) {
    memset(s, 0, sizeof *s);
    s->shortcut = 'B';
    s->classes = 1000;
    s->in_channels = 3;
    s->bn_eps = 1e-5f;
    s->bn_momentum = 0.1f;
}

/* Sets the four ImageNet stages with the given block counts. */
static void imagenet_stages(rn_spec *s, int a, int b, int c, int d) {
    int blocks[4] = {a, b, c, d}, widths[4] = {64, 128, 256, 512};
    s->stem = RN_STEM_IMAGENET;
    s->nstages = 4;
    memcpy(s->blocks, blocks, sizeof blocks);
    memcpy(s->widths, widths, sizeof widths);
}

/* Looks up an ImageNet depth (18..152): block counts and whether it uses
** bottlenecks. Returns 0 for an unknown depth. */
static int imagenet_depth(int depth, rn_spec *s, int *bottleneck) {
    switch (depth) {
    case 18: imagenet_stages(s, 2, 2, 2, 2); *bottleneck = 0; return 1;
    case 34: imagenet_stages(s, 3, 4, 6, 3); *bottleneck = 0; return 1;
    case 50: imagenet_stages(s, 3, 4, 6, 3); *bottleneck = 1; return 1;
    case 101: imagenet_stages(s, 3, 4, 23, 3); *bottleneck = 1; return 1;
    case 152: imagenet_stages(s, 3, 8, 36, 3); *bottleneck = 1; return 1;
    default: return 0;
    }
}

/* Parses a string of exactly one decimal integer. */
static int parse_int(const char *p, int *out) {
    char *end;
    long v = strtol(p, &end, 10);
    if (end == p || *end || v < 0 || v > 100000) return 0;
    *out = (int)v;
    return 1;
}

/* Fills *spec for a named architecture. */
rn_status rn_spec_from_name(const char *name, rn_spec *spec, rn_error *err) {
    static const char *known =
        "resnet18, resnet34, resnet50, resnet101, resnet152, resnet50-v1, resnet101-v1, resnet152-v1, "
        "preact-resnet18/34/50/101/152, resnet20, resnet32, resnet44, resnet56, resnet110";
    rn_spec s;
    spec_defaults(&s);
    int depth, bottleneck, preact = 0, v1 = 0;
    char buf[64];
    if (!name || strlen(name) >= sizeof buf) return rn_fail(err, RN_ERR_ARG, "unknown architecture; known: %s", known);
    strcpy(buf, name);
    const char *p = buf;
    if (!strncmp(p, "preact-", 7)) preact = 1, p += 7;
    char *dash = strchr(buf, '-');
    if (dash && !strcmp(dash, "-v1") && !preact) v1 = 1, *dash = 0;
    if (strncmp(p, "resnet", 6) || !parse_int(p + 6, &depth))
        return rn_fail(err, RN_ERR_ARG, "unknown architecture '%s'; known: %s", name, known);
    if (imagenet_depth(depth, &s, &bottleneck)) {
        if (v1 && !bottleneck)
            return rn_fail(err, RN_ERR_ARG, "'%s': the -v1 variants exist only for bottleneck depths 50/101/152", name);
        s.block = preact ? (bottleneck ? RN_BLOCK_PREACT_BOTTLENECK : RN_BLOCK_PREACT_BASIC)
                         : (bottleneck ? RN_BLOCK_BOTTLENECK : RN_BLOCK_BASIC);
        s.stride_on_1x1 = v1;
    } else if (!preact && !v1 && depth >= 8 && (depth - 2) % 6 == 0 &&
               (depth == 20 || depth == 32 || depth == 44 || depth == 56 || depth == 110)) {
        int n = (depth - 2) / 6;
        s.block = RN_BLOCK_BASIC;
        s.stem = RN_STEM_CIFAR;
        s.nstages = 3;
        for (int i = 0; i < 3; i++) s.blocks[i] = n, s.widths[i] = 16 << i;
        s.classes = 10;
    } else {
        return rn_fail(err, RN_ERR_ARG, "unknown architecture '%s'; known: %s", name, known);
    }
    snprintf(s.arch, sizeof s.arch, "%s", name);
    *spec = s;
    return RN_OK;
}

/* Parses "3,4,6,3" into at most RN_MAX_STAGES positive integers. */
static rn_status parse_list(const char *what, const char *text, int *out, int *n, rn_error *err) {
    char buf[256];
    if (!text || !*text || strlen(text) >= sizeof buf)
        return rn_fail(err, RN_ERR_ARG, "--%s: expected a comma-separated list like 3,4,6,3", what);
    strcpy(buf, text);
    *n = 0;
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        int v;
        if (*n == RN_MAX_STAGES) return rn_fail(err, RN_ERR_ARG, "--%s: at most %d stages", what, RN_MAX_STAGES);
        if (!parse_int(tok, &v) || v < 1 || v > 4096)
            return rn_fail(err, RN_ERR_ARG, "--%s: '%s' is not an integer in [1, 4096]", what, tok);
        out[(*n)++] = v;
    }
    if (*n == 0) return rn_fail(err, RN_ERR_ARG, "--%s: empty list", what);
    return RN_OK;
}

/* Fills *spec for a custom network from its lists and kinds. */
rn_status rn_spec_custom(const char *blocks, const char *widths, const char *block, const char *stem,
                         rn_spec *spec, rn_error *err) {
    static const char *kinds[] = {"basic", "bottleneck", "preact-basic", "preact-bottleneck"};
    rn_spec s;
    spec_defaults(&s);
    int nb, nw, kind = -1;
    rn_status st = parse_list("blocks", blocks, s.blocks, &nb, err);
    if (st) return st;
    if ((st = parse_list("widths", widths, s.widths, &nw, err))) return st;
    if (nb != nw) return rn_fail(err, RN_ERR_ARG, "--blocks has %d stages but --widths has %d", nb, nw);
    for (int i = 0; i < 4; i++)
        if (block && !strcmp(block, kinds[i])) kind = i;
    if (kind < 0)
        return rn_fail(err, RN_ERR_ARG, "--block '%s': expected basic, bottleneck, preact-basic or preact-bottleneck",
                       block ? block : "");
    if (stem && strcmp(stem, "imagenet") && strcmp(stem, "cifar"))
        return rn_fail(err, RN_ERR_ARG, "--stem '%s': expected imagenet or cifar", stem);
    s.block = (rn_block_kind)kind;
    s.stem = stem && !strcmp(stem, "cifar") ? RN_STEM_CIFAR : RN_STEM_IMAGENET;
    s.nstages = nb;
    snprintf(s.arch, sizeof s.arch, "custom");
    *spec = s;
    return RN_OK;
}
