/*
** Image folders: DIR/train/<class>/... and DIR/val/<class>/... (or valid/),
** the layout of ImageNet, Imagenette and torchvision's ImageFolder.
**
** Classes are the subdirectories of train/, sorted with strcmp as
** torchvision sorts them, so label i means the same class here and there.
** Files are found recursively, following symlinks (a directory already on
** the current path is not entered again, so symlink loops end), and ordered
** as torchvision orders them: by directory path, then by file name. Image
** files are recognized by extension (.jpg .jpeg .png, any case); anything
** else is counted in `skipped`. Names are plain bytes: non-UTF-8 names work,
** and path lengths are only limited by PATH_MAX.
*/
#define _DEFAULT_SOURCE /* struct dirent's d_type saves a stat per file */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "core/error.h"
#include "data/data_internal.h"

#ifndef PATH_MAX
#define PATH_MAX 4096
#endif

/* One image file found: its path and where its directory part ends. */
typedef struct {
    char *path;
    size_t dirlen;
} file_ent;

/* A directory on the current walk path, to stop symlink loops. */
typedef struct {
    dev_t dev;
    ino_t ino;
} dir_id;

/* State of one recursive walk of a class directory. */
typedef struct {
    file_ent *files;
    size_t n, cap;
    dir_id *stack;
    size_t depth, stack_cap;
    size_t skipped;
} walker;

/* A growable list of strings. */
typedef struct {
    char **v;
    size_t n, cap;
} strlist;

/* One "id name" line of a labels file. */
typedef struct {
    char *id, *name;
    size_t line;
} label_ent;

/* Appends s (taking ownership) to l; on failure frees s. */
static int strlist_push(strlist *l, char *s) {
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 16;
        char **nv = realloc(l->v, nc * sizeof *nv);
        if (!nv) {
            free(s);
            return 0;
        }
        l->v = nv;
        l->cap = nc;
    }
    l->v[l->n++] = s;
    return 1;
}

/* Frees every string of l and the list. */
static void strlist_free(strlist *l) {
    for (size_t i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

/* qsort comparator: strcmp order (bytes as unsigned). */
static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Joins dir and name with '/' into fresh memory, refusing paths longer than
** PATH_MAX (the system could not open them anyway). */
static rn_status join_path(const char *dir, const char *name, char **out, rn_error *err) {
    size_t a = strlen(dir), b = strlen(name);
    *out = NULL;
    if (a + b + 2 > PATH_MAX)
        return rn_fail(err, RN_ERR_IO, "%s/%s: path longer than PATH_MAX (%d)", dir, name, PATH_MAX);
    char *p = malloc(a + b + 2);
    if (!p) return rn_fail(err, RN_ERR_NOMEM, "%s: out of memory", dir);
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    *out = p;
    return RN_OK;
}

/* Returns 1 if name ends in .jpg, .jpeg or .png, in any case. */
static int is_image_name(const char *name) {
    const char *dot = strrchr(name, '.');
    if (!dot) return 0;
    return strcasecmp(dot, ".jpg") == 0 || strcasecmp(dot, ".jpeg") == 0 ||
           strcasecmp(dot, ".png") == 0;
}

/* Returns 1 if path is a directory (following symlinks). */
static int is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Lists the subdirectories of dir (following symlinks), sorted with strcmp. */
static rn_status list_subdirs(const char *dir, strlist *out, rn_error *err) {
    DIR *d = opendir(dir);
    if (!d) return rn_fail(err, RN_ERR_IO, "%s: cannot open directory: %s", dir, strerror(errno));
    rn_status s = RN_OK;
    struct dirent *e;
    while (s == RN_OK && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char *p;
        s = join_path(dir, e->d_name, &p, err);
        if (s != RN_OK) break;
        int sub = is_dir(p);
        free(p);
        if (!sub) continue;
        char *name = rn_ds_strdup(e->d_name);
        if (!name || !strlist_push(out, name)) s = rn_fail(err, RN_ERR_NOMEM, "%s: out of memory", dir);
    }
    closedir(d);
    if (s == RN_OK && out->n > 1) qsort(out->v, out->n, sizeof *out->v, cmp_str);
    return s;
}

/* Adds an image path (taking ownership) to the walk's results. */
static rn_status walker_add(walker *w, char *path, size_t dirlen, rn_error *err) {
    if (w->n == w->cap) {
        size_t nc = w->cap ? w->cap * 2 : 256;
        file_ent *nf = realloc(w->files, nc * sizeof *nf);
        if (!nf) {
            free(path);
            return rn_fail(err, RN_ERR_NOMEM, "out of memory listing image files");
        }
        w->files = nf;
        w->cap = nc;
    }
    w->files[w->n++] = (file_ent){path, dirlen};
    return RN_OK;
}

/* Pushes a directory's identity on the walk path; 0 if it already is on it
** (a symlink loop) or memory ran out (*nomem set). */
static int walker_enter(walker *w, const struct stat *st, int *nomem) {
    for (size_t i = 0; i < w->depth; i++)
        if (w->stack[i].dev == st->st_dev && w->stack[i].ino == st->st_ino) return 0;
    if (w->depth == w->stack_cap) {
        size_t nc = w->stack_cap ? w->stack_cap * 2 : 16;
        dir_id *ns = realloc(w->stack, nc * sizeof *ns);
        if (!ns) {
            *nomem = 1;
            return 0;
        }
        w->stack = ns;
        w->stack_cap = nc;
    }
    w->stack[w->depth++] = (dir_id){st->st_dev, st->st_ino};
    return 1;
}

/* Walks dir (already entered on the walk path): image files are collected,
** other files counted as skipped, subdirectories walked after the listing is
** closed (so open directories do not pile up with depth). */
static rn_status walk(walker *w, const char *dir, rn_error *err) {
    DIR *d = opendir(dir);
    if (!d) return rn_fail(err, RN_ERR_IO, "%s: cannot open directory: %s", dir, strerror(errno));
    strlist subs = {0};
    rn_status s = RN_OK;
    size_t dirlen = strlen(dir);
    struct dirent *e;
    while (s == RN_OK && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char *p;
        s = join_path(dir, e->d_name, &p, err);
        if (s != RN_OK) break;
        struct stat st;
        int reg = e->d_type == DT_REG, sub = 0;
        if (!reg && e->d_type != DT_FIFO && e->d_type != DT_SOCK && e->d_type != DT_CHR &&
            e->d_type != DT_BLK && stat(p, &st) == 0) {
            reg = S_ISREG(st.st_mode);
            sub = S_ISDIR(st.st_mode);
        }
        if (sub) {
            if (!strlist_push(&subs, p)) s = rn_fail(err, RN_ERR_NOMEM, "%s: out of memory", dir);
        } else if (reg && is_image_name(e->d_name)) {
            s = walker_add(w, p, dirlen, err);
        } else {
            w->skipped++; /* not an image, a broken link or a special file */
            free(p);
        }
    }
    closedir(d);
    for (size_t i = 0; s == RN_OK && i < subs.n; i++) {
        struct stat st;
        int nomem = 0;
        if (stat(subs.v[i], &st) != 0) continue;
        if (!walker_enter(w, &st, &nomem)) {
            if (nomem) s = rn_fail(err, RN_ERR_NOMEM, "%s: out of memory", dir);
            continue; /* already on the path: a symlink loop */
        }
        s = walk(w, subs.v[i], err);
        w->depth--;
    }
    strlist_free(&subs);
    return s;
}

/* qsort comparator: torchvision's order, by directory path then file name. */
static int cmp_file(const void *a, const void *b) {
    const file_ent *x = a, *y = b;
    size_t n = x->dirlen < y->dirlen ? x->dirlen : y->dirlen;
    int c = memcmp(x->path, y->path, n);
    if (c) return c;
    if (x->dirlen != y->dirlen) return x->dirlen < y->dirlen ? -1 : 1;
    return strcmp(x->path + x->dirlen, y->path + y->dirlen);
}

/* Finds a class's image files (recursively, sorted) and appends them with
** label `label` to d; a class without images is an error naming it. */
static rn_status add_class(const char *cdir, int label, rn_dataset *d, strlist *paths,
                           size_t *nlabels_cap, rn_error *err) {
    walker w = {0};
    struct stat st;
    int nomem = 0;
    rn_status s = RN_OK;
    if (stat(cdir, &st) != 0) s = rn_fail(err, RN_ERR_IO, "%s: %s", cdir, strerror(errno));
    else if (!walker_enter(&w, &st, &nomem)) s = rn_fail(err, RN_ERR_NOMEM, "%s: out of memory", cdir);
    if (s == RN_OK) s = walk(&w, cdir, err);
    if (s == RN_OK && w.n == 0)
        s = rn_fail(err, RN_ERR_FORMAT, "%s: class directory has no .jpg, .jpeg or .png images", cdir);
    if (s == RN_OK) {
        qsort(w.files, w.n, sizeof *w.files, cmp_file);
        if (d->n + w.n > *nlabels_cap) {
            size_t nc = (d->n + w.n) * 2;
            int *nl = realloc(d->labels, nc * sizeof *nl);
            if (!nl) s = rn_fail(err, RN_ERR_NOMEM, "%s: out of memory", cdir);
            else d->labels = nl, *nlabels_cap = nc;
        }
    }
    size_t i = 0;
    for (; s == RN_OK && i < w.n; i++) {
        if (!strlist_push(paths, w.files[i].path)) {
            s = rn_fail(err, RN_ERR_NOMEM, "%s: out of memory", cdir);
            i++; /* strlist_push freed it */
            break;
        }
        d->labels[d->n++] = label;
    }
    for (; i < w.n; i++) free(w.files[i].path);
    d->skipped += w.skipped;
    free(w.files);
    free(w.stack);
    return s;
}

/* Fills one half from root/<class>/... for the given classes: `which[j]`
** is the label of root's j-th subdirectory `sub[j]`. */
static rn_status fill_half(const char *root, const strlist *sub, const int *which, rn_dataset *d,
                           rn_error *err) {
    strlist paths = {0};
    size_t cap = 0;
    rn_status s = RN_OK;
    for (size_t j = 0; s == RN_OK && j < sub->n; j++) {
        char *cdir;
        s = join_path(root, sub->v[j], &cdir, err);
        if (s == RN_OK) s = add_class(cdir, which[j], d, &paths, &cap, err);
        free(cdir);
    }
    d->paths = paths.v; /* n entries, freed by rn_dataset_free */
    if (s != RN_OK) d->n = paths.n;
    return s;
}

/* Splits a labels-file line into id and name; 0 if malformed. */
static int parse_label_line(char *line, char **id, char **name) {
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t'))
        line[--n] = 0;
    char *p = line;
    while (*p == ' ' || *p == '\t') p++;
    *id = p;
    while (*p && *p != ' ' && *p != '\t') p++;
    if (!*p) return 0;
    *p++ = 0;
    while (*p == ' ' || *p == '\t') p++;
    *name = p;
    return **name != 0;
}

/* qsort/bsearch comparator for label entries, by id. */
static int cmp_label(const void *a, const void *b) {
    return strcmp(((const label_ent *)a)->id, ((const label_ent *)b)->id);
}

/* Reads a labels file: "id name..." per line, blank lines ignored; a
** malformed line or a repeated id is an error naming file:line. */
static rn_status read_labels(const char *path, label_ent **out, size_t *nout, rn_error *err) {
    FILE *fp = fopen(path, "r");
    if (!fp) return rn_fail(err, RN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    label_ent *v = NULL;
    size_t n = 0, cap = 0, lineno = 0, len = 0;
    char *line = NULL;
    rn_status s = RN_OK;
    while (s == RN_OK && getline(&line, &len, fp) >= 0) {
        lineno++;
        char *id, *name, *p = line;
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') p++;
        if (!*p) continue;
        if (!parse_label_line(line, &id, &name)) {
            s = rn_fail(err, RN_ERR_FORMAT, "%s:%zu: expected \"folder-name readable name\"", path, lineno);
            break;
        }
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 64;
            label_ent *nv = realloc(v, nc * sizeof *nv);
            if (!nv) {
                s = rn_fail(err, RN_ERR_NOMEM, "%s: out of memory", path);
                break;
            }
            v = nv;
            cap = nc;
        }
        v[n].id = rn_ds_strdup(id);
        v[n].name = rn_ds_strdup(name);
        v[n].line = lineno;
        n++;
        if (!v[n - 1].id || !v[n - 1].name) s = rn_fail(err, RN_ERR_NOMEM, "%s: out of memory", path);
    }
    free(line);
    if (s == RN_OK && ferror(fp)) s = rn_fail(err, RN_ERR_IO, "%s: read error", path);
    fclose(fp);
    if (s == RN_OK && n > 1) qsort(v, n, sizeof *v, cmp_label);
    for (size_t i = 1; s == RN_OK && i < n; i++)
        if (strcmp(v[i - 1].id, v[i].id) == 0) {
            size_t a = v[i - 1].line, b = v[i].line;
            s = rn_fail(err, RN_ERR_FORMAT, "%s:%zu: folder name \"%s\" already listed on line %zu",
                        path, a > b ? a : b, v[i].id, a < b ? a : b);
        }
    *out = v;
    *nout = n;
    return s;
}

/* Sets nclasses, class_ids (folder names) and class_names (from the labels
** file where listed, else the folder name) on d. */
static rn_status set_classes(rn_dataset *d, const strlist *classes, const label_ent *lab, size_t nlab,
                             rn_error *err) {
    d->nclasses = (int)classes->n;
    d->class_ids = calloc(classes->n, sizeof *d->class_ids);
    d->class_names = calloc(classes->n, sizeof *d->class_names);
    if (!d->class_ids || !d->class_names) return rn_fail(err, RN_ERR_NOMEM, "%s: out of memory", d->source);
    for (size_t i = 0; i < classes->n; i++) {
        label_ent key = {classes->v[i], NULL, 0};
        const label_ent *hit = nlab ? bsearch(&key, lab, nlab, sizeof *lab, cmp_label) : NULL;
        d->class_ids[i] = rn_ds_strdup(classes->v[i]);
        d->class_names[i] = rn_ds_strdup(hit ? hit->name : classes->v[i]);
        if (!d->class_ids[i] || !d->class_names[i])
            return rn_fail(err, RN_ERR_NOMEM, "%s: out of memory", d->source);
    }
    return RN_OK;
}

/* Maps each validation class to its training label; a class that is not a
** training class is an error naming it. */
static rn_status map_val(const char *vroot, const strlist *vsub, const strlist *classes, int *which,
                         rn_error *err) {
    for (size_t j = 0; j < vsub->n; j++) {
        char **hit = bsearch(&vsub->v[j], classes->v, classes->n, sizeof *classes->v, cmp_str);
        if (!hit)
            return rn_fail(err, RN_ERR_FORMAT, "%s/%s: validation class is not a training class",
                           vroot, vsub->v[j]);
        which[j] = (int)(hit - classes->v);
    }
    return RN_OK;
}

/* Everything rn_folder_open allocates, freed in one place. */
typedef struct {
    char *troot, *vroot;
    strlist classes, vsub;
    int *which;
    label_ent *lab;
    size_t nlab;
} folder_tmp;

/* Frees the scratch state of rn_folder_open. */
static void folder_tmp_free(folder_tmp *t) {
    free(t->troot);
    free(t->vroot);
    strlist_free(&t->classes);
    strlist_free(&t->vsub);
    free(t->which);
    for (size_t i = 0; i < t->nlab; i++) free(t->lab[i].id), free(t->lab[i].name);
    free(t->lab);
}

/* Finds DIR/train and DIR/val (or DIR/valid) with their class lists. */
static rn_status folder_roots(const char *dir, int want_val, folder_tmp *t, rn_error *err) {
    struct stat st;
    if (stat(dir, &st) != 0) return rn_fail(err, RN_ERR_IO, "%s: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return rn_fail(err, RN_ERR_ARG, "%s: not a directory (nor a known dataset name)", dir);
    rn_status s = join_path(dir, "train", &t->troot, err);
    if (s != RN_OK) return s;
    if (!is_dir(t->troot))
        return rn_fail(err, RN_ERR_FORMAT, "%s: no train/ directory (expected DIR/train/<class>/...)", dir);
    s = list_subdirs(t->troot, &t->classes, err);
    if (s == RN_OK && t->classes.n == 0)
        s = rn_fail(err, RN_ERR_FORMAT, "%s: no class directories", t->troot);
    if (s == RN_OK && t->classes.n > INT_MAX / 2)
        s = rn_fail(err, RN_ERR_FORMAT, "%s: too many class directories", t->troot);
    if (s != RN_OK || !want_val) return s;
    static const char *const vnames[2] = {"val", "valid"};
    for (int i = 0; i < 2 && s == RN_OK && !t->vroot; i++) {
        char *p;
        s = join_path(dir, vnames[i], &p, err);
        if (s == RN_OK && is_dir(p)) t->vroot = p;
        else free(p);
    }
    if (s == RN_OK && !t->vroot) s = rn_fail(err, RN_ERR_FORMAT, "%s: no val/ or valid/ directory", dir);
    if (s == RN_OK) s = list_subdirs(t->vroot, &t->vsub, err);
    if (s == RN_OK && t->vsub.n == 0) s = rn_fail(err, RN_ERR_FORMAT, "%s: no class directories", t->vroot);
    return s;
}

/* Opens an image folder; see the top of this file. */
rn_status rn_folder_open(const char *dir, const char *labels_file, rn_dataset *train,
                         rn_dataset *valid, rn_error *err) {
    folder_tmp t = {0};
    char src[600];
    rn_status s = folder_roots(dir, valid != NULL, &t, err);
    if (s == RN_OK && labels_file) s = read_labels(labels_file, &t.lab, &t.nlab, err);
    if (s == RN_OK && train) {
        snprintf(src, sizeof src, "%s (train)", dir);
        rn_ds_reset(train, RN_DS_FILES, src);
        train->c = 3;
        s = set_classes(train, &t.classes, t.lab, t.nlab, err);
        int *ident = s == RN_OK ? malloc(t.classes.n * sizeof *ident) : NULL;
        if (s == RN_OK && !ident) s = rn_fail(err, RN_ERR_NOMEM, "%s: out of memory", dir);
        for (size_t j = 0; ident && j < t.classes.n; j++) ident[j] = (int)j;
        if (s == RN_OK) s = fill_half(t.troot, &t.classes, ident, train, err);
        free(ident);
    }
    if (s == RN_OK && valid) {
        snprintf(src, sizeof src, "%s (%s)", dir, strrchr(t.vroot, '/') + 1);
        rn_ds_reset(valid, RN_DS_FILES, src);
        valid->c = 3;
        s = set_classes(valid, &t.classes, t.lab, t.nlab, err);
        t.which = s == RN_OK ? malloc((t.vsub.n ? t.vsub.n : 1) * sizeof *t.which) : NULL;
        if (s == RN_OK && !t.which) s = rn_fail(err, RN_ERR_NOMEM, "%s: out of memory", dir);
        if (s == RN_OK) s = map_val(t.vroot, &t.vsub, &t.classes, t.which, err);
        if (s == RN_OK) s = fill_half(t.vroot, &t.vsub, t.which, valid, err);
    }
    folder_tmp_free(&t);
    if (s != RN_OK) {
        rn_dataset_free(train);
        rn_dataset_free(valid);
    }
    return s;
}
