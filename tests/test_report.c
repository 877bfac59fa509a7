/*
** Tests for src/train/report and src/train/plot: the epoch table against
** strings built by fastprogress's console rule (names padded to 8 and
** joined by two spaces; cells padded to name width + 2), the bar in tty and
** plain modes, the loss smoother against a hand computation of fastai's
** SmoothenValue, the CSV log (header once, append, truncate for resume),
** and the pictures (size, not blank, the documented colours present, SVG
** text, errors naming the path, no temp files left behind).
** Usage: test_report [DIR]   keeps the pictures in DIR (else a temp dir).
** Prints failed checks, and last the line "N passed, M failed"; exits
** non-zero if anything failed.
*/
#include "train/plot.h"
#include "train/report.h"
#include "check.h"

#include <cairo.h>
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Counters and the scratch directories, passed to every test. */
typedef struct {
    int pass, fail;
    char dir[256];  /* scratch files, removed at the end */
    char pics[256]; /* pictures: dir, or the directory given on the command line */
} tctx;

/* Reads a whole file into a new NUL-terminated string (NULL on failure). */
static char *slurp(const char *path) {
    FILE *fp = fopen(path, "rb");
    char *b = NULL;
    long n;
    if (!fp) return NULL;
    if (fseek(fp, 0, SEEK_END) == 0 && (n = ftell(fp)) >= 0 && fseek(fp, 0, SEEK_SET) == 0 &&
        (b = malloc((size_t)n + 1)) != NULL) {
        if (fread(b, 1, (size_t)n, fp) != (size_t)n) {
            free(b);
            b = NULL;
        } else {
            b[n] = '\0';
        }
    }
    fclose(fp);
    return b;
}

/* A report writing into a memory buffer, and the buffer. */
typedef struct {
    char *buf;
    size_t len;
    FILE *fp;
    rn_report *r;
} capture;

/* Opens a capture and a report on it; returns 1 on success. */
static int cap_open(capture *c, int tty, int color, int top5) {
    rn_error err = {RN_OK, ""};
    c->buf = NULL, c->len = 0, c->r = NULL;
    c->fp = open_memstream(&c->buf, &c->len);
    if (!c->fp) return 0;
    if (rn_report_create(c->fp, tty, color, top5, &c->r, &err) != RN_OK) {
        printf("  rn_report_create: %s\n", err.msg);
        return 0;
    }
    return 1;
}

/* Frees the report and closes the stream; c->buf stays (caller frees). */
static void cap_close(capture *c) {
    rn_report_free(c->r);
    if (c->fp) fclose(c->fp);
}

/* The table in fastai's console form, byte for byte. */
static void test_table(tctx *T) {
    static const char want[] =
        "epoch     train_loss  valid_loss  accuracy  time    \n"
        "0         0.421307    0.350197    0.873200  00:42     \n"
        "1         nan         123456.500000 0.900000  1:01:05   \n";
    static const char want5[] =
        "epoch     train_loss  valid_loss  accuracy  top_k_accuracy  time    \n"
        "12        0.300000    0.250000    0.910000  0.990000        10:00     \n";
    capture c;
    if (!CHECK(T, cap_open(&c, 0, 0, 0))) return;
    rn_report_header(c.r);
    rn_report_header(c.r); /* only once */
    rn_report_row(c.r, 0, 0.421307, 0.350197, 0.8732, NAN, 42.9);
    rn_report_row(c.r, 1, NAN, 123456.5, 0.9, 0.5, 3665.0);
    cap_close(&c);
    if (!CHECK(T, c.buf && strcmp(c.buf, want) == 0)) printf("  got:\n%s  want:\n%s", c.buf, want);
    free(c.buf);

    if (!CHECK(T, cap_open(&c, 0, 0, 1))) return;
    rn_report_row(c.r, 12, 0.3, 0.25, 0.91, 0.99, 600.0); /* prints the header itself */
    cap_close(&c);
    if (!CHECK(T, c.buf && strcmp(c.buf, want5) == 0)) printf("  got:\n%s  want:\n%s", c.buf, want5);
    free(c.buf);
}

/* fastai's format_time: mm:ss under an hour, h:mm:ss from one on. */
static void test_format_time(tctx *T) {
    char b[32];
    CHECK(T, strcmp(rn_format_time(0, b, sizeof b), "00:00") == 0);
    CHECK(T, strcmp(rn_format_time(59.99, b, sizeof b), "00:59") == 0);
    CHECK(T, strcmp(rn_format_time(600, b, sizeof b), "10:00") == 0);
    CHECK(T, strcmp(rn_format_time(3599, b, sizeof b), "59:59") == 0);
    CHECK(T, strcmp(rn_format_time(3600, b, sizeof b), "1:00:00") == 0);
    CHECK(T, strcmp(rn_format_time(36000 + 62, b, sizeof b), "10:01:02") == 0);
    CHECK(T, strcmp(rn_format_time(NAN, b, sizeof b), "00:00") == 0);
}

/* Counts occurrences of ch in s. */
static int count_char(const char *s, char ch) {
    int n = 0;
    for (; s && *s; s++) n += *s == ch;
    return n;
}

/* Returns 1 if s contains "ETA dd:dd". */
static int has_eta(const char *s) {
    for (const char *p = s; p && (p = strstr(p, "ETA ")) != NULL; p++)
        if (p[4] >= '0' && p[4] <= '9' && p[5] >= '0' && p[5] <= '9' && p[6] == ':' && p[7] >= '0' &&
            p[7] <= '9' && p[8] >= '0' && p[8] <= '9')
            return 1;
    return 0;
}

/* Plain mode: one line per tenth, no '\r', no escapes; a short pass
** prints a line per batch. */
static void test_plain_bar(tctx *T) {
    capture c;
    if (!CHECK(T, cap_open(&c, 0, 1, 0))) return;
    rn_report_epoch_begin(c.r, 3, 20, "train");
    for (size_t i = 1; i <= 20; i++) rn_report_batch(c.r, i, 0.5, 1000.0);
    rn_report_epoch_end(c.r);
    rn_report_epoch_begin(c.r, 3, 3, "valid");
    for (size_t i = 1; i <= 3; i++) rn_report_batch(c.r, i, 0.25, 500.0);
    rn_report_epoch_end(c.r);
    cap_close(&c);
    CHECK(T, c.buf != NULL);
    CHECK(T, count_char(c.buf, '\r') == 0);
    CHECK(T, count_char(c.buf, '\033') == 0);
    CHECK(T, count_char(c.buf, '\n') == 13);
    CHECK(T, strstr(c.buf, "epoch 3 train  10% 2/20 loss 0.5000") != NULL);
    CHECK(T, strstr(c.buf, "epoch 3 train 100% 20/20 loss 0.5000  1000 img/s  ETA 00:00\n") != NULL);
    CHECK(T, strstr(c.buf, "epoch 3 valid  33% 1/3 loss 0.2500") != NULL);
    CHECK(T, has_eta(c.buf));
    free(c.buf);
}

/* tty mode: '\r'-redrawn bar with the ETA, rate limited, cleared at the
** end; colour unless NO_COLOR is set. */
static void test_tty_bar(tctx *T) {
    capture c;
    unsetenv("NO_COLOR");
    if (!CHECK(T, cap_open(&c, 1, 1, 0))) return;
    rn_report_epoch_begin(c.r, 0, 1000, "train");
    for (size_t i = 1; i <= 1000; i++) rn_report_batch(c.r, i, 1.25, 300.0);
    rn_report_epoch_end(c.r);
    cap_close(&c);
    CHECK(T, c.buf != NULL);
    CHECK(T, has_eta(c.buf));
    CHECK(T, count_char(c.buf, '\n') == 0);
    CHECK(T, count_char(c.buf, '\r') >= 3);   /* first draw, last draw, clear */
    CHECK(T, count_char(c.buf, '\r') <= 100); /* ~10 redraws/s, not 1000 */
    CHECK(T, strstr(c.buf, "1000/1000 loss 1.2500") != NULL);
    CHECK(T, strstr(c.buf, "\033[32m") != NULL);
    if (c.buf) {
        size_t n = strlen(c.buf);
        CHECK(T, n >= 2 && c.buf[n - 1] == '\r' && c.buf[n - 2] == ' '); /* line blanked */
    }
    free(c.buf);

    setenv("NO_COLOR", "1", 1);
    if (!CHECK(T, cap_open(&c, 1, 1, 0))) return;
    rn_report_epoch_begin(c.r, 0, 4, "valid");
    rn_report_batch(c.r, 1, 1.0, 10.0);
    rn_report_epoch_end(c.r);
    rn_report_row(c.r, 0, 1, 1, 0.5, 0, 1);
    cap_close(&c);
    unsetenv("NO_COLOR");
    CHECK(T, c.buf && count_char(c.buf, '\033') == 0);
    CHECK(T, c.buf && strstr(c.buf, "[#######.......................] 1/4") != NULL);
    CHECK(T, c.buf && strstr(c.buf, "\repoch     train_loss") != NULL); /* table starts at column 0 */
    free(c.buf);
}

/* rn_smooth against fastai's SmoothenValue by hand: mov = 0.98*mov + 0.02*v,
** smooth = mov / (1 - 0.98^n). */
static void test_smooth(tctx *T) {
    rn_smooth s = RN_SMOOTH_INIT;
    const double v[4] = {1.0, 2.0, 3.0, 0.5};
    /* 0.02/0.02; 0.0596/0.0396; 0.118408/0.058808; 0.12603984/0.07763184 */
    const double want[4] = {1.0, 1.5050505050505050, 2.0134675554346348, 1.6235585811182616};
    CHECK(T, isnan(rn_smooth_value(&s)));
    for (int i = 0; i < 4; i++) {
        double got = rn_smooth_update(&s, v[i]);
        if (!CHECK(T, fabs(got - want[i]) < 1e-12)) printf("  step %d: got %.17g want %.17g\n", i, got, want[i]);
    }
    CHECK(T, s.n == 4 && fabs(s.avg - 0.12603984) < 1e-12);
    CHECK(T, fabs(rn_smooth_value(&s) - want[3]) < 1e-12);
    rn_smooth_init(&s, 0.5);
    CHECK(T, s.n == 0 && s.avg == 0 && s.beta == 0.5);
    rn_smooth_update(&s, 4.0);
    CHECK(T, fabs(rn_smooth_update(&s, 2.0) - (0.5 * 2.0 + 0.5 * 2.0) / 0.75) < 1e-12);
}

/* Counts the names in dir containing ".tmp." (leftover temp files). */
static int temp_files(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    if (!d) return -1;
    while ((e = readdir(d)) != NULL) n += strstr(e->d_name, ".tmp.") != NULL;
    closedir(d);
    return n;
}

/* The CSV log: header once, rows appended, truncation for resume. */
static void test_csv(tctx *T) {
    char p[512], bad[512];
    rn_error err = {RN_OK, ""};
    char *s;
    path_in(T->dir, "log.csv", p, sizeof p);
    CHECK(T, rn_log_csv_truncate(p, 3, &err) == RN_OK); /* missing: nothing to do */
    CHECK(T, rn_log_csv_append(p, 0, 0.5, 0.4, 0.8, NAN, 12.5, 1e-3, &err) == RN_OK);
    CHECK(T, rn_log_csv_append(p, 1, 0.25, 0.125, 0.875, 0.99, 3600, 2.5e-4, &err) == RN_OK);
    CHECK(T, rn_log_csv_append(p, 2, 0.2, INFINITY, 0.9, 0.995, 1, 0, &err) == RN_OK);
    s = slurp(p);
    CHECK(T, s && strcmp(s, "epoch,train_loss,valid_loss,accuracy,top5,time,lr\n"
                            "0,0.500000,0.400000,0.800000,,12.500,0.001\n"
                            "1,0.250000,0.125000,0.875000,0.990000,3600.000,0.00025\n"
                            "2,0.200000,,0.900000,0.995000,1.000,0\n") == 0);
    free(s);
    CHECK(T, rn_log_csv_truncate(p, 1, &err) == RN_OK);
    CHECK(T, rn_log_csv_append(p, 1, 0.3, 0.2, 0.85, NAN, 10, 1e-3, &err) == RN_OK);
    s = slurp(p);
    CHECK(T, s && strcmp(s, "epoch,train_loss,valid_loss,accuracy,top5,time,lr\n"
                            "0,0.500000,0.400000,0.800000,,12.500,0.001\n"
                            "1,0.300000,0.200000,0.850000,,10.000,0.001\n") == 0);
    free(s);
    /* a row cut short by a crash: ended before the next row, dropped by truncate */
    FILE *fp = fopen(p, "a");
    if (fp) fputs("x,0.1", fp), fclose(fp);
    CHECK(T, rn_log_csv_append(p, 2, 0.1, 0.1, 0.95, NAN, 1, 1e-3, &err) == RN_OK);
    s = slurp(p);
    CHECK(T, s && strstr(s, "\nx,0.1\n2,0.100000,") != NULL);
    free(s);
    CHECK(T, rn_log_csv_truncate(p, 100, &err) == RN_OK);
    s = slurp(p);
    CHECK(T, s && strstr(s, "x,0.1") == NULL && strstr(s, "\n2,0.100000,") != NULL &&
                 strncmp(s, "epoch,", 6) == 0 && strstr(s + 1, "epoch,") == NULL);
    free(s);
    CHECK(T, rn_log_csv_truncate(p, 0, &err) == RN_OK);
    s = slurp(p);
    CHECK(T, s && strcmp(s, "epoch,train_loss,valid_loss,accuracy,top5,time,lr\n") == 0);
    free(s);
    CHECK(T, temp_files(T->dir) == 0);
    struct stat st;
    CHECK(T, stat(p, &st) == 0 && (st.st_mode & 0777) == 0644); /* umask 022 honoured, not mkstemp's 0600 */
    path_in(T->dir, "no/such/dir/log.csv", bad, sizeof bad);
    err.msg[0] = '\0';
    CHECK(T, rn_log_csv_append(bad, 0, 1, 1, 1, 1, 1, 1, &err) == RN_ERR_IO);
    CHECK(T, strstr(err.msg, bad) != NULL);
    printf("  rejected: %s\n", err.msg);
}

/* ---- pictures ---------------------------------------------------------- */

/* A loaded PNG's size and pixel statistics. */
typedef struct {
    int w, h;
    long nonwhite;
} png_info;

/* Loads path with cairo; returns the surface (NULL on failure). */
static cairo_surface_t *load_png(const char *path, png_info *info) {
    cairo_surface_t *sf = cairo_image_surface_create_from_png(path);
    if (cairo_surface_status(sf) != CAIRO_STATUS_SUCCESS) {
        cairo_surface_destroy(sf);
        return NULL;
    }
    info->w = cairo_image_surface_get_width(sf);
    info->h = cairo_image_surface_get_height(sf);
    info->nonwhite = 0;
    cairo_surface_flush(sf);
    for (int y = 0; y < info->h; y++) {
        const uint32_t *row = (const uint32_t *)(const void *)(cairo_image_surface_get_data(sf) +
                                                               (size_t)y * cairo_image_surface_get_stride(sf));
        for (int x = 0; x < info->w; x++) info->nonwhite += (row[x] & 0xFFFFFF) != 0xFFFFFF;
    }
    return sf;
}

/* Counts pixels within tol (sum of channel differences) of colour rgb (0xRRGGBB). */
static long count_color(cairo_surface_t *sf, unsigned rgb, int tol) {
    int w = cairo_image_surface_get_width(sf), h = cairo_image_surface_get_height(sf);
    long n = 0;
    for (int y = 0; y < h; y++) {
        const uint32_t *row = (const uint32_t *)(const void *)(cairo_image_surface_get_data(sf) +
                                                               (size_t)y * cairo_image_surface_get_stride(sf));
        for (int x = 0; x < w; x++) {
            int d = abs((int)(row[x] >> 16 & 255) - (int)(rgb >> 16 & 255)) +
                    abs((int)(row[x] >> 8 & 255) - (int)(rgb >> 8 & 255)) + abs((int)(row[x] & 255) - (int)(rgb & 255));
            n += d <= tol;
        }
    }
    return n;
}

/* Checks a PNG at path: size w x h, more than min_ink non-white pixels,
** and at least min_px pixels of each of the ncol colours. */
static void check_png(tctx *T, const char *path, int w, int h, long min_ink, const unsigned *cols, int ncol,
                      long min_px) {
    png_info info;
    cairo_surface_t *sf = load_png(path, &info);
    if (!CHECK(T, sf != NULL)) return;
    if (!CHECK(T, info.w == w && info.h == h)) printf("  %s: %dx%d, want %dx%d\n", path, info.w, info.h, w, h);
    if (!CHECK(T, info.nonwhite > min_ink)) printf("  %s: only %ld non-white pixels\n", path, info.nonwhite);
    for (int i = 0; i < ncol; i++) {
        long n = count_color(sf, cols[i], 24);
        if (!CHECK(T, n >= min_px)) printf("  %s: %ld pixels of #%06x, want >= %ld\n", path, n, cols[i], min_px);
    }
    cairo_surface_destroy(sf);
}

/* Checks an SVG file starts like one and has some drawing in it. */
static void check_svg(tctx *T, const char *path) {
    char *s = slurp(path);
    CHECK(T, s && (strncmp(s, "<?xml", 5) == 0 || strncmp(s, "<svg", 4) == 0));
    CHECK(T, s && strstr(s, "<svg") != NULL && strstr(s, "</svg>") != NULL && strlen(s) > 2000);
    free(s);
}

#define BLUE 0x1f77b4u
#define ORANGE 0xff7f0eu
#define GREEN 0x2ca02cu
#define RED 0xff0000u

/* A line chart with two series (one with NaN and Inf holes), as PNG and SVG. */
static void test_plot_lines(tctx *T) {
    double x[60], a[60], b[60];
    char p[512];
    rn_error err = {RN_OK, ""};
    for (int i = 0; i < 60; i++) {
        x[i] = i * 0.25;
        a[i] = 2.3 * exp(-x[i] / 4) + 0.1;
        b[i] = 2.0 * exp(-x[i] / 6) + 0.3;
    }
    b[10] = NAN, b[30] = INFINITY;
    rn_series s[2] = {{"train", x, a, 60}, {"valid", x, b, 60}};
    const unsigned cols[2] = {BLUE, ORANGE};
    path_in(T->pics, "lines.png", p, sizeof p);
    if (!CHECK(T, rn_plot_lines(p, "Loss", "epoch", "loss", s, 2, 0, NAN, NAN, &err) == RN_OK))
        printf("  %s\n", err.msg);
    check_png(T, p, 800, 500, 8000, cols, 2, 400);
    path_in(T->pics, "lines.svg", p, sizeof p);
    CHECK(T, rn_plot_lines(p, "Loss", "epoch", "loss", s, 2, 0, NAN, NAN, &err) == RN_OK);
    check_svg(T, p);
    /* nothing plottable: still a picture (empty axes), no error */
    double nan1[2] = {NAN, INFINITY};
    rn_series e = {"none", nan1, nan1, 2};
    path_in(T->dir, "empty.png", p, sizeof p);
    CHECK(T, rn_plot_lines(p, NULL, NULL, NULL, &e, 1, 1, NAN, NAN, &err) == RN_OK);
}

/* The lr finder's picture: log x, a red suggestion marker. */
static void test_plot_lr(tctx *T) {
    double lr[100], loss[100];
    char p[512];
    rn_error err = {RN_OK, ""};
    for (int i = 0; i < 100; i++) {
        lr[i] = 1e-7 * pow(10.0, 8.0 * i / 99);
        double t = log10(lr[i]);
        loss[i] = 2.3 - 1.5 / (1 + exp(-(t + 3.5) * 2)) + (t > -0.8 ? (t + 0.8) * 3 : 0);
    }
    rn_series s = {NULL, lr, loss, 100};
    const unsigned cols[2] = {BLUE, RED};
    path_in(T->pics, "lr_find.png", p, sizeof p);
    if (!CHECK(T, rn_plot_lines(p, "Learning rate finder", "learning rate", "loss", &s, 1, 1, lr[45], loss[45],
                                &err) == RN_OK))
        printf("  %s\n", err.msg);
    check_png(T, p, 800, 500, 5000, cols, 2, 60);
}

/* Training curves: two panels with the three series' colours. */
static void test_plot_training(tctx *T) {
    double ep[8], tl[8], vl[8], acc[8];
    char p[512];
    rn_error err = {RN_OK, ""};
    for (int i = 0; i < 8; i++) {
        ep[i] = i;
        tl[i] = 0.9 * exp(-i / 3.0) + 0.2;
        vl[i] = 0.7 * exp(-i / 4.0) + 0.3;
        acc[i] = 0.95 - 0.25 * exp(-i / 2.5);
    }
    const unsigned cols[3] = {BLUE, ORANGE, GREEN};
    path_in(T->pics, "training.png", p, sizeof p);
    if (!CHECK(T, rn_plot_training(p, ep, tl, vl, acc, 8, &err) == RN_OK)) printf("  %s\n", err.msg);
    check_png(T, p, 1200, 450, 10000, cols, 3, 300);
    path_in(T->pics, "training.svg", p, sizeof p);
    CHECK(T, rn_plot_training(p, ep, tl, vl, acc, 8, &err) == RN_OK);
    check_svg(T, p);
    path_in(T->dir, "train_only.png", p, sizeof p);
    CHECK(T, rn_plot_training(p, ep, tl, NULL, NULL, 8, &err) == RN_OK);
}

/* A 10-class confusion matrix: the darkest Blues colour on the big diagonal cells. */
static void test_plot_confusion(tctx *T) {
    static const char *const names[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                          "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};
    int64_t c[100];
    char p[512];
    rn_error err = {RN_OK, ""};
    for (int i = 0; i < 10; i++)
        for (int j = 0; j < 10; j++) c[i * 10 + j] = i == j ? 900 + 9 * i : (i * 7 + j * 3) % 23;
    c[6 * 10 + 0] = 120, c[0 * 10 + 6] = 95;
    const unsigned dark[1] = {0x08306bu}, light[1] = {0xf7fbffu};
    path_in(T->pics, "confusion.png", p, sizeof p);
    if (!CHECK(T, rn_plot_confusion(p, 10, names, c, &err) == RN_OK)) printf("  %s\n", err.msg);
    check_png(T, p, 800, 800, 50000, dark, 1, 1000);
    check_png(T, p, 800, 800, 50000, light, 1, 20000);
    path_in(T->pics, "confusion.svg", p, sizeof p);
    CHECK(T, rn_plot_confusion(p, 10, names, c, &err) == RN_OK);
    check_svg(T, p);
    path_in(T->dir, "confusion_big.png", p, sizeof p);
    int64_t *big = calloc(200 * 200, sizeof *big);
    if (big) {
        for (int i = 0; i < 200; i++) big[i * 200 + i] = 5;
        CHECK(T, rn_plot_confusion(p, 200, NULL, big, &err) == RN_OK);
        free(big);
    }
}

/* A prediction card: the image enlarged on the left, bars on the right. */
static void test_plot_prediction(tctx *T) {
    enum { H = 28, W = 28 };
    uint8_t img[H * W * 3];
    static const char *const names[3] = {"Ankle boot", "Sneaker", "Sandal"};
    const double probs[3] = {0.873, 0.101, 0.026};
    char p[512];
    rn_error err = {RN_OK, ""};
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            uint8_t *px = img + (y * W + x) * 3;
            int on = (x / 4 + y / 4) % 2;
            px[0] = on ? 200 : 20, px[1] = on ? 30 : 20, px[2] = on ? 200 : 20;
        }
    const unsigned cols[2] = {0xc81ec8u, BLUE};
    path_in(T->pics, "prediction.png", p, sizeof p);
    if (!CHECK(T, rn_plot_prediction(p, img, H, W, names, probs, 3, &err) == RN_OK)) printf("  %s\n", err.msg);
    check_png(T, p, 800, 440, 60000, cols, 1, 50000); /* about half of 360x360 is magenta */
    check_png(T, p, 800, 440, 60000, cols + 1, 1, 2000);
    path_in(T->dir, "prediction.svg", p, sizeof p);
    CHECK(T, rn_plot_prediction(p, img, H, W, names, probs, 3, &err) == RN_OK);
    check_svg(T, p);
}

/* Unwritable paths and bad arguments are errors naming the path; no temp
** files are left behind. */
static void test_plot_errors(tctx *T) {
    double x[2] = {0, 1};
    rn_series s = {"a", x, x, 2};
    int64_t c[1] = {1};
    uint8_t px[3] = {0, 0, 0};
    char bad[512], p[512];
    rn_error err = {RN_OK, ""};
    path_in(T->dir, "missing/dir/plot.png", bad, sizeof bad);
    CHECK(T, rn_plot_lines(bad, "t", "x", "y", &s, 1, 0, NAN, NAN, &err) == RN_ERR_IO);
    CHECK(T, strstr(err.msg, bad) != NULL);
    printf("  rejected: %s\n", err.msg);
    err.msg[0] = '\0';
    CHECK(T, rn_plot_confusion(bad, 1, NULL, c, &err) == RN_ERR_IO && strstr(err.msg, bad) != NULL);
    err.msg[0] = '\0';
    CHECK(T, rn_plot_training(bad, x, x, x, x, 2, &err) == RN_ERR_IO && strstr(err.msg, bad) != NULL);
    err.msg[0] = '\0';
    CHECK(T, rn_plot_prediction(bad, px, 1, 1, NULL, NULL, 0, &err) == RN_ERR_IO && strstr(err.msg, bad) != NULL);
    path_in(T->dir, "plot.jpg", p, sizeof p);
    err.msg[0] = '\0';
    CHECK(T, rn_plot_lines(p, "t", "x", "y", &s, 1, 0, NAN, NAN, &err) == RN_ERR_ARG && strstr(err.msg, p) != NULL);
    printf("  rejected: %s\n", err.msg);
    path_in(T->dir, "plot.png", p, sizeof p);
    rn_series hole = {"a", NULL, x, 2};
    CHECK(T, rn_plot_lines(p, "t", "x", "y", &hole, 1, 0, NAN, NAN, &err) == RN_ERR_ARG);
    CHECK(T, rn_plot_confusion(p, 0, NULL, c, &err) == RN_ERR_ARG);
    CHECK(T, rn_plot_prediction(p, px, 0, 1, NULL, NULL, 0, &err) == RN_ERR_ARG);
    CHECK(T, rn_plot_prediction(p, px, 1, 1, NULL, NULL, 2, &err) == RN_ERR_ARG);
    CHECK(T, access(p, F_OK) != 0);
    CHECK(T, temp_files(T->dir) == 0);
    CHECK(T, temp_files(T->pics) == 0);
}

/* LeakSanitizer hook: fontconfig (loaded by cairo for the toy text API)
** keeps a few hundred bytes of its configuration for the life of the
** process and never frees them; that is not ours to fix. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) { return "leak:libfontconfig.so\n"; }

/* Removes the scratch directory and the files in it (one level). */
static void remove_dir(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[512];
    if (!d) return;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) unlink(path_in(dir, e->d_name, p, sizeof p));
    closedir(d);
    rmdir(dir);
}

int main(int argc, char **argv) {
    tctx T = {0, 0, "/tmp/rn_report_test.XXXXXX", ""};
    if (!mkdtemp(T.dir)) {
        perror("mkdtemp");
        printf("0 passed, 1 failed\n");
        return 1;
    }
    umask(022);
    snprintf(T.pics, sizeof T.pics, "%s", argc > 1 ? argv[1] : T.dir);
    if (argc > 1) mkdir(T.pics, 0755);
    test_table(&T);
    test_format_time(&T);
    test_plain_bar(&T);
    test_tty_bar(&T);
    test_smooth(&T);
    test_csv(&T);
    test_plot_lines(&T);
    test_plot_lr(&T);
    test_plot_training(&T);
    test_plot_confusion(&T);
    test_plot_prediction(&T);
    test_plot_errors(&T);
    remove_dir(T.dir);
    cairo_debug_reset_static_data();
    printf("%d passed, %d failed\n", T.pass, T.fail);
    return T.fail ? 1 : 0;
}
