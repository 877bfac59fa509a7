/*
** Training output: the live progress bar, fastai's epoch table, the loss
** smoother and the CSV log (see report.h for the formats).
*/
#include "train/report.h"
#include "core/error.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BAR_WIDTH 30       /* characters between the brackets */
#define REDRAW_PERIOD 0.1  /* seconds between two tty redraws */
#define MAX_COLS 6

struct rn_report {
    FILE *out;
    int tty, color, top5;
    int header_done;
    int ncols;
    const char *names[MAX_COLS]; /* table columns, in order */
    int width[MAX_COLS];         /* each name's padded width: max(8, len) */
    /* the pass in progress */
    int epoch;
    size_t total;
    char phase[16];
    double t0;          /* when it began (monotonic seconds) */
    double last_draw;   /* when the bar was last drawn, < 0 for never */
    size_t last_decile; /* non-tty: the last tenth reported */
    int bar_len;        /* visible characters of the bar on screen, 0 = none */
};

/* Monotonic time in seconds, for rates and ETAs that must not jump. */
static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Sets up the table's columns as fastai names them. */
static void set_columns(rn_report *r) {
    static const char *const base[] = {"epoch", "train_loss", "valid_loss", "accuracy"};
    r->ncols = 0;
    for (int i = 0; i < 4; i++) r->names[r->ncols++] = base[i];
    if (r->top5) r->names[r->ncols++] = "top_k_accuracy";
    r->names[r->ncols++] = "time";
    for (int i = 0; i < r->ncols; i++) {
        int len = (int)strlen(r->names[i]);
        r->width[i] = len < 8 ? 8 : len;
    }
}

/* Allocates a report writing to out; NO_COLOR (non-empty) turns colour off. */
rn_status rn_report_create(FILE *out, int tty, int color, int top5, rn_report **r, rn_error *err) {
    const char *nc = getenv("NO_COLOR");
    rn_report *p;
    if (!out || !r) return rn_fail(err, RN_ERR_ARG, "rn_report_create: no output stream or result pointer");
    p = calloc(1, sizeof *p);
    if (!p) return rn_fail(err, RN_ERR_NOMEM, "rn_report_create: out of memory");
    p->out = out;
    p->tty = tty != 0;
    p->color = color && !(nc && *nc);
    p->top5 = top5 != 0;
    p->last_draw = -1.0;
    set_columns(p);
    *r = p;
    return RN_OK;
}

/* Frees the report (the stream stays open: it belongs to the caller). */
void rn_report_free(rn_report *r) { free(r); }

/* Blanks the bar's line on a tty and puts the cursor back at its start,
** so the next line printed does not carry the bar's tail. */
static void clear_bar(rn_report *r) {
    if (!r->tty || r->bar_len == 0) return;
    fprintf(r->out, "\r%*s\r", r->bar_len, "");
    r->bar_len = 0;
}

/* Prints the header once: names padded to 8, joined by two spaces. */
void rn_report_header(rn_report *r) {
    if (!r || r->header_done) return;
    clear_bar(r);
    for (int i = 0; i < r->ncols; i++)
        fprintf(r->out, "%s%-*s", i ? "  " : "", r->width[i], r->names[i]);
    fputc('\n', r->out);
    fflush(r->out);
    r->header_done = 1;
}

/* Starts a pass: remembers its size and start time for the bar and ETA. */
void rn_report_epoch_begin(rn_report *r, int epoch, size_t nbatches, const char *phase) {
    if (!r) return;
    r->epoch = epoch;
    r->total = nbatches;
    snprintf(r->phase, sizeof r->phase, "%s", phase ? phase : "");
    r->t0 = now_s();
    r->last_draw = -1.0;
    r->last_decile = 0;
}

/* Formats t seconds as fastai's format_time: h:mm:ss from an hour on, else mm:ss. */
char *rn_format_time(double t, char *buf, size_t cap) {
    long s = isfinite(t) && t > 0 ? (long)t : 0;
    long h = s / 3600, m = (s / 60) % 60;
    if (h != 0)
        snprintf(buf, cap, "%ld:%02ld:%02ld", h, m, s % 60);
    else
        snprintf(buf, cap, "%02ld:%02ld", m, s % 60);
    return buf;
}

/* Writes the text after the bar: "done/total loss L  N img/s  ETA mm:ss".
** The ETA extrapolates the pass's elapsed time over the batches left. */
static int status_text(const rn_report *r, size_t done, double loss, double ips, double elapsed,
                       char *buf, size_t cap) {
    char eta[32];
    if (done > 0 && done <= r->total)
        rn_format_time(elapsed * (double)(r->total - done) / (double)done, eta, sizeof eta);
    else
        snprintf(eta, sizeof eta, "--:--");
    return snprintf(buf, cap, "%zu/%zu loss %.4f  %.0f img/s  ETA %s", done, r->total, loss, ips, eta);
}

/* Draws the bar in place: "\r<label> [####......] <status>", padded with
** spaces over a longer previous bar. Colour wraps the filled part. */
static void draw_bar(rn_report *r, size_t done, const char *status) {
    char label[48];
    int filled = r->total ? (int)((double)BAR_WIDTH * (double)done / (double)r->total) : BAR_WIDTH;
    int len;
    if (filled > BAR_WIDTH) filled = BAR_WIDTH;
    len = snprintf(label, sizeof label, "epoch %d %s ", r->epoch, r->phase);
    fprintf(r->out, "\r%s[%s", label, r->color ? "\033[32m" : "");
    for (int i = 0; i < filled; i++) fputc('#', r->out);
    fputs(r->color ? "\033[0m\033[2m" : "", r->out);
    for (int i = filled; i < BAR_WIDTH; i++) fputc('.', r->out);
    fprintf(r->out, "%s] %s", r->color ? "\033[0m" : "", status);
    len += BAR_WIDTH + 3 + (int)strlen(status);
    if (len < r->bar_len) fprintf(r->out, "%*s", r->bar_len - len, "");
    if (len > r->bar_len) r->bar_len = len;
    fflush(r->out);
}

/* Reports progress. On a tty the bar is redrawn at most every 0.1 s (and
** always for the first and the last batch); otherwise a plain line is
** printed each time another tenth of the pass is done. */
void rn_report_batch(rn_report *r, size_t done, double running_loss, double images_per_s) {
    char status[160];
    double t;
    if (!r) return;
    t = now_s();
    if (r->tty) {
        if (r->last_draw >= 0 && done < r->total && t - r->last_draw < REDRAW_PERIOD) return;
        status_text(r, done, running_loss, images_per_s, t - r->t0, status, sizeof status);
        draw_bar(r, done, status);
        r->last_draw = t;
        return;
    }
    size_t decile = r->total ? (done >= r->total ? 10 : done * 10 / r->total) : 10;
    if (decile <= r->last_decile) return;
    r->last_decile = decile;
    status_text(r, done, running_loss, images_per_s, t - r->t0, status, sizeof status);
    fprintf(r->out, "epoch %d %s %3d%% %s\n", r->epoch, r->phase,
            (int)(r->total ? 100.0 * (double)done / (double)r->total : 100.0), status);
    fflush(r->out);
}

/* Ends a pass: the bar's line is blanked so the table row takes its place. */
void rn_report_epoch_end(rn_report *r) {
    if (!r) return;
    clear_bar(r);
    fflush(r->out);
}

/* Formats one table cell value as fastai does (f'{v:.6f}', "nan" for NaN). */
static void fmt_float(double v, char *buf, size_t cap) {
    if (isnan(v))
        snprintf(buf, cap, "nan");
    else
        snprintf(buf, cap, "%.6f", v);
}

/* Prints a row: each cell padded to its column's width + 2, as fastai does.
** A value wider than that is never cut, and (unlike fastai, where it would
** run into the next cell) is followed by one space. */
void rn_report_row(rn_report *r, int epoch, double train_loss, double valid_loss, double accuracy,
                   double top5, double seconds) {
    char cell[MAX_COLS][64];
    int c = 0;
    if (!r) return;
    rn_report_header(r);
    clear_bar(r);
    snprintf(cell[c++], sizeof cell[0], "%d", epoch);
    fmt_float(train_loss, cell[c++], sizeof cell[0]);
    fmt_float(valid_loss, cell[c++], sizeof cell[0]);
    fmt_float(accuracy, cell[c++], sizeof cell[0]);
    if (r->top5) fmt_float(top5, cell[c++], sizeof cell[0]);
    rn_format_time(seconds, cell[c++], sizeof cell[0]);
    for (int i = 0; i < c; i++)
        fprintf(r->out, "%-*s%s", r->width[i] + 2, cell[i], (int)strlen(cell[i]) >= r->width[i] + 2 ? " " : "");
    fputc('\n', r->out);
    fflush(r->out);
}

/* ---- loss smoothing --------------------------------------------------- */

/* Resets the smoother. */
void rn_smooth_init(rn_smooth *s, double beta) {
    s->avg = 0.0;
    s->n = 0;
    s->beta = beta;
}

/* The debiased average: the raw EMA started at 0 and is divided by the
** weight it has gathered so far, 1 - beta^n. */
double rn_smooth_value(const rn_smooth *s) {
    if (s->n <= 0) return NAN;
    double w = 1.0 - pow(s->beta, (double)s->n);
    return w > 0 ? s->avg / w : s->avg;
}

/* Adds one loss value (fastai: mov_avg = beta*mov_avg + (1-beta)*val). */
double rn_smooth_update(rn_smooth *s, double loss) {
    s->n++;
    s->avg = s->beta * s->avg + (1.0 - s->beta) * loss;
    return rn_smooth_value(s);
}

/* ---- CSV log ---------------------------------------------------------- */

static const char csv_header[] = "epoch,train_loss,valid_loss,accuracy,top5,time,lr\n";

/* Formats one CSV field: empty for NaN/Inf, else printf with fmt. */
static void csv_field(char *buf, size_t cap, const char *fmt, double v) {
    if (!isfinite(v))
        buf[0] = '\0';
    else
        snprintf(buf, cap, fmt, v);
}

/* Returns 1 if the open file is empty; sets *ends_nl to whether its last byte is '\n'. */
static int file_state(FILE *fp, int *ends_nl) {
    long size;
    *ends_nl = 1;
    if (fseek(fp, 0, SEEK_END) != 0 || (size = ftell(fp)) <= 0) return 1;
    if (fseek(fp, size - 1, SEEK_SET) == 0) *ends_nl = fgetc(fp) == '\n';
    return 0;
}

/* Appends one row, with the header first when the file is new or empty. */
rn_status rn_log_csv_append(const char *path, int epoch, double train_loss, double valid_loss, double acc,
                            double top5, double seconds, double lr, rn_error *err) {
    char f[6][48];
    FILE *fp;
    int ends_nl, empty, ok;
    if (!path || !*path) return rn_fail(err, RN_ERR_ARG, "rn_log_csv_append: no path");
    fp = fopen(path, "a+");
    if (!fp) return rn_fail(err, RN_ERR_IO, "%s: cannot open log for appending: %s", path, strerror(errno));
    empty = file_state(fp, &ends_nl);
    csv_field(f[0], sizeof f[0], "%.6f", train_loss);
    csv_field(f[1], sizeof f[1], "%.6f", valid_loss);
    csv_field(f[2], sizeof f[2], "%.6f", acc);
    csv_field(f[3], sizeof f[3], "%.6f", top5);
    csv_field(f[4], sizeof f[4], "%.3f", seconds);
    csv_field(f[5], sizeof f[5], "%.6g", lr);
    fseek(fp, 0, SEEK_END);
    ok = (empty ? fputs(csv_header, fp) >= 0 : 1) && (ends_nl ? 1 : fputc('\n', fp) != EOF) &&
         fprintf(fp, "%d,%s,%s,%s,%s,%s,%s\n", epoch, f[0], f[1], f[2], f[3], f[4], f[5]) > 0;
    ok = fflush(fp) == 0 && ok;
    if (fclose(fp) != 0) ok = 0;
    if (!ok) return rn_fail(err, RN_ERR_IO, "%s: cannot append to log: %s", path, strerror(errno));
    return RN_OK;
}

/* Creates a new temp file beside path (so the rename stays within one
** filesystem) with O_EXCL and mode 0666 less the umask, as fopen would;
** the name mixes the pid, the clock and a stack address, retried on a
** clash. Returns the descriptor and fills tmp (cap bytes), or -1. */
static int create_temp(const char *path, char *tmp, size_t cap) {
    int fd = -1;
    for (int attempt = 0; attempt < 64 && fd < 0; attempt++) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        unsigned long salt = (unsigned long)ts.tv_nsec ^ ((unsigned long)(uintptr_t)&fd >> 4) ^ (unsigned long)attempt * 2654435761u;
        snprintf(tmp, cap, "%s.tmp.%ld.%lx", path, (long)getpid(), salt & 0xffffffUL);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0666);
        if (fd < 0 && errno != EEXIST) return -1;
    }
    return fd;
}

/* Writes n bytes to path atomically: a new temp file beside it, flushed and
** synced, renamed over path. On failure path is untouched and the temp
** file removed. */
rn_status rn_file_write_atomic(const char *path, const void *data, size_t n, rn_error *err) {
    size_t cap = strlen(path) + 48;
    char *tmp = malloc(cap);
    int fd, ok;
    FILE *fp;
    if (!tmp) return rn_fail(err, RN_ERR_NOMEM, "%s: out of memory", path);
    fd = create_temp(path, tmp, cap);
    if (fd < 0) {
        rn_status s = rn_fail(err, RN_ERR_IO, "%s: cannot create a file there: %s", path, strerror(errno));
        free(tmp);
        return s;
    }
    fp = fdopen(fd, "wb");
    if (!fp) close(fd);
    ok = fp && fwrite(data, 1, n, fp) == n && fflush(fp) == 0 && fsync(fileno(fp)) == 0;
    if (fp && fclose(fp) != 0) ok = 0;
    if (ok && rename(tmp, path) != 0) ok = 0;
    if (!ok) {
        rn_status s = rn_fail(err, RN_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
        remove(tmp);
        free(tmp);
        return s;
    }
    free(tmp);
    return RN_OK;
}

/* Reads a whole file into a NUL-terminated buffer; *missing is set when it
** does not exist. */
static rn_status read_all(const char *path, char **out, size_t *n, int *missing, rn_error *err) {
    FILE *fp = fopen(path, "rb");
    long size;
    char *buf;
    *missing = 0;
    if (!fp) {
        if (errno == ENOENT) {
            *missing = 1;
            return RN_OK;
        }
        return rn_fail(err, RN_ERR_IO, "%s: cannot open log: %s", path, strerror(errno));
    }
    if (fseek(fp, 0, SEEK_END) != 0 || (size = ftell(fp)) < 0 || fseek(fp, 0, SEEK_SET) != 0) {
        fclose(fp);
        return rn_fail(err, RN_ERR_IO, "%s: cannot read log", path);
    }
    buf = malloc((size_t)size + 1);
    if (!buf) {
        fclose(fp);
        return rn_fail(err, RN_ERR_NOMEM, "%s: out of memory for a %ld-byte log", path, size);
    }
    if (fread(buf, 1, (size_t)size, fp) != (size_t)size) {
        free(buf);
        fclose(fp);
        return rn_fail(err, RN_ERR_IO, "%s: cannot read log", path);
    }
    fclose(fp);
    buf[size] = '\0';
    *out = buf;
    *n = (size_t)size;
    return RN_OK;
}

/* Decides whether one complete log line (without its '\n') stays: the
** header does; a row does when it starts "<epoch>," with epoch < keep. */
static int keep_line(const char *line, size_t len, int keep) {
    char *end;
    long e;
    if (len >= 6 && memcmp(line, "epoch,", 6) == 0) return 1;
    if (len == 0 || line[0] < '0' || line[0] > '9') return 0;
    e = strtol(line, &end, 10);
    return end < line + len && *end == ',' && e < keep;
}

/* Rewrites the log keeping the header and the rows of epochs < keep_epochs. */
rn_status rn_log_csv_truncate(const char *path, int keep_epochs, rn_error *err) {
    char *buf = NULL, *outb;
    size_t n = 0, m = 0;
    int missing;
    rn_status s;
    if (!path || !*path) return rn_fail(err, RN_ERR_ARG, "rn_log_csv_truncate: no path");
    s = read_all(path, &buf, &n, &missing, err);
    if (s != RN_OK || missing) return s;
    outb = malloc(n + 1);
    if (!outb) {
        free(buf);
        return rn_fail(err, RN_ERR_NOMEM, "%s: out of memory", path);
    }
    for (char *line = buf, *nl; (nl = memchr(line, '\n', n - (size_t)(line - buf))) != NULL; line = nl + 1) {
        size_t len = (size_t)(nl - line);
        if (!keep_line(line, len, keep_epochs)) continue;
        memcpy(outb + m, line, len + 1);
        m += len + 1;
    }
    s = rn_file_write_atomic(path, outb, m, err);
    free(outb);
    free(buf);
    return s;
}
