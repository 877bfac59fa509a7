/*
** `--config FILE`: options read from a file, for every command. The file
** is a JSON object or TOML `key = value` lines (no tables); each key is an
** option name without its dashes. A string or number becomes the option's
** value, an array becomes its items joined by commas (blocks = [3,4,6,3]
** gives --blocks 3,4,6,3), true gives the flag and false leaves it out.
** The options are placed before the command line's own, and since a later
** option wins, the command line overrides the file.
*/
#include "cli/config.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"

/* A growing argument vector that owns its strings. */
typedef struct {
    char **v;
    int n, cap;
} argvec;

/* Appends a copy of s; -1 when out of memory. */
static int push(argvec *a, const char *s) {
    if (a->n + 2 > a->cap) {
        int cap = a->cap ? 2 * a->cap : 16;
        char **v = realloc(a->v, (size_t)cap * sizeof *v);
        if (!v) return -1;
        a->v = v, a->cap = cap;
    }
    char *c = strdup(s);
    if (!c) return -1;
    a->v[a->n++] = c;
    a->v[a->n] = NULL;
    return 0;
}

/* Pushes "--key". */
static int push_key(argvec *a, const char *key) {
    char buf[300];
    snprintf(buf, sizeof buf, "--%.256s", key);
    return push(a, buf);
}

/* Reads a whole file into a NUL-terminated string; NULL on failure. */
static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0, got;
    char *s = malloc(cap);
    while (s && (got = fread(s + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (n + 1 == cap) {
            char *t = realloc(s, cap *= 2);
            if (!t) free(s);
            s = t;
        }
    }
    fclose(f);
    if (s) s[n] = 0;
    return s;
}

/* The text of a JSON scalar as an option value (numbers without a
** trailing ".0"); NULL for other kinds. Writes into buf. */
static const char *json_scalar(const cJSON *it, char *buf, size_t cap) {
    if (cJSON_IsString(it)) return it->valuestring;
    if (!cJSON_IsNumber(it)) return NULL;
    double v = it->valuedouble;
    if (v == (double)(long long)v) snprintf(buf, cap, "%lld", (long long)v);
    else snprintf(buf, cap, "%.17g", v);
    return buf;
}

/* The option value of a JSON member: a scalar, or an array's scalars
** joined by commas, into buf; NULL for anything else. */
static const char *json_value(const cJSON *it, char *buf, size_t cap) {
    char one[64];
    if (!cJSON_IsArray(it)) return json_scalar(it, buf, cap);
    buf[0] = 0;
    for (const cJSON *e = it->child; e; e = e->next) {
        const char *v = json_scalar(e, one, sizeof one);
        if (!v) return NULL;
        size_t n = strlen(buf);
        snprintf(buf + n, cap - n, "%s%s", n ? "," : "", v);
    }
    return buf;
}

/* Adds the options of a JSON object; -1 after printing an error. */
static int from_json(const char *path, const char *text, argvec *a) {
    cJSON *root = cJSON_Parse(text);
    int st = cJSON_IsObject(root) ? 0 : -1;
    if (st) rn_cli_error("--config: %s is not a JSON object", path);
    for (const cJSON *it = root ? root->child : NULL; it && !st; it = it->next) {
        char buf[4096];
        const char *val = json_value(it, buf, sizeof buf);
        if (cJSON_IsFalse(it) || cJSON_IsNull(it)) continue;
        if (cJSON_IsTrue(it)) {
            st = push_key(a, it->string);
        } else if (val) {
            st = push_key(a, it->string) || push(a, val);
        } else {
            rn_cli_error("--config: %s: '%s' must be a string, number, boolean or list of them", path, it->string);
            st = -1;
        }
    }
    cJSON_Delete(root);
    return st ? -1 : 0;
}

/* Parses one TOML value at p (a quoted string, an array of scalars, or a
** bare word: number or boolean) into out; returns the end or NULL. */
static const char *toml_value(const char *p, char *out, size_t cap) {
    size_t n = 0;
    if (*p == '"' || *p == '\'') {
        char q = *p++;
        for (; *p && *p != q; p++) {
            if (q == '"' && *p == '\\' && p[1]) p++;
            if (n + 1 < cap) out[n++] = *p;
        }
        if (*p != q) return NULL;
        out[n] = 0;
        return p + 1;
    }
    if (*p == '[') {
        for (p++;;) {
            while (isspace((unsigned char)*p) || *p == ',') p++;
            if (*p == ']') break;
            if (n && n + 1 < cap) out[n++] = ',';
            if (!(p = toml_value(p, out + n, cap - n))) return NULL;
            n += strlen(out + n);
        }
        out[n] = 0;
        return p + 1;
    }
    while (*p && !isspace((unsigned char)*p) && *p != ',' && *p != ']' && *p != '#')
        if (n + 1 < cap) out[n++] = *p++;
        else p++;
    out[n] = 0;
    return n ? p : NULL;
}

/* Adds the options of TOML key = value lines; -1 after printing an error. */
static int from_toml(const char *path, const char *text, argvec *a) {
    int line = 0;
    for (const char *p = text; *p; line++) {
        const char *end = strchr(p, '\n'), *next = end ? end + 1 : p + strlen(p);
        while (p < next && isspace((unsigned char)*p)) p++;
        if (p >= next || *p == '#') {
            p = next;
            continue;
        }
        const char *k = p;
        while (isalnum((unsigned char)*p) || *p == '-' || *p == '_') p++;
        int klen = (int)(p - k);
        while (*p == ' ' || *p == '\t') p++;
        char val[4096];
        const char *after = klen && *p == '=' ? toml_value(p + 1 + strspn(p + 1, " \t"), val, sizeof val) : NULL;
        if (after) after += strspn(after, " \t\r");
        if (!after || (*after && *after != '\n' && *after != '#')) {
            rn_cli_error("--config: %s:%d: expected key = value (a string, number, boolean or [list])", path, line + 1);
            return -1;
        }
        char key[256];
        snprintf(key, sizeof key, "%.*s", klen, k);
        for (char *c = key; *c; c++) *c = *c == '_' ? '-' : *c; /* TOML style snake_case keys too */
        int st = !strcmp(val, "false") ? 0 : !strcmp(val, "true") ? push_key(a, key) : push_key(a, key) || push(a, val);
        if (st) return rn_cli_error("out of memory"), -1;
        p = next;
    }
    return 0;
}

/* Finds --config in argv[1..]; returns its index (value at *path) or 0. */
static int find_config(int argc, char **argv, const char **path) {
    for (int i = 1; i < argc; i++) {
        if (!strncmp(argv[i], "--config=", 9)) return *path = argv[i] + 9, i;
        if (!strcmp(argv[i], "--config")) return *path = i + 1 < argc ? argv[i + 1] : NULL, i;
    }
    return 0;
}

/* See config.h. */
int rn_config_expand(int argc, char **argv, int *out_argc, char ***out_argv) {
    const char *path = NULL;
    int at = find_config(argc, argv, &path), st = 0;
    *out_argc = argc, *out_argv = NULL;
    if (!at) return 0;
    if (!path) return rn_cli_error("%s: option --config needs a value", argv[0]), -1;
    char *text = read_text(path);
    if (!text) return rn_cli_error("--config: cannot read %s", path), -1;
    argvec a = {0};
    st = push(&a, argv[0]);
    const char *s = text + strspn(text, " \t\r\n");
    if (!st) st = *s == '{' ? from_json(path, text, &a) : from_toml(path, text, &a);
    int skip = strchr(argv[at], '=') ? 1 : 2;
    for (int i = 1; !st && i < argc; i++)
        if (i < at || i >= at + skip) st = push(&a, argv[i]);
    free(text);
    if (st) {
        rn_config_free(a.n, a.v);
        return -1;
    }
    *out_argc = a.n, *out_argv = a.v;
    return 0;
}

/* Frees a vector made by rn_config_expand. */
void rn_config_free(int argc, char **argv) {
    for (int i = 0; argv && i < argc; i++) free(argv[i]);
    free(argv);
}
