/*
** Pictures drawn with cairo (see plot.h): a small chart engine (axes with
** round-numbered ticks, linear or log x, lines, a legend, a marker) used by
** the line chart and the training curves, plus the confusion matrix and the
** prediction card. Each picture is rendered into memory as PNG or SVG and
** then written atomically with rn_file_write_atomic.
*/
#include "train/plot.h"
#include "train/report.h"
#include "core/error.h"

#include <cairo.h>
#include <cairo-svg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FONT "sans-serif"
#define PI 3.14159265358979323846

typedef struct {
    double r, g, b;
} color;

/* matplotlib's tab10 cycle. */
static const color tab10[10] = {
    {0x1f / 255.0, 0x77 / 255.0, 0xb4 / 255.0}, {0xff / 255.0, 0x7f / 255.0, 0x0e / 255.0},
    {0x2c / 255.0, 0xa0 / 255.0, 0x2c / 255.0}, {0xd6 / 255.0, 0x27 / 255.0, 0x28 / 255.0},
    {0x94 / 255.0, 0x67 / 255.0, 0xbd / 255.0}, {0x8c / 255.0, 0x56 / 255.0, 0x4b / 255.0},
    {0xe3 / 255.0, 0x77 / 255.0, 0xc2 / 255.0}, {0x7f / 255.0, 0x7f / 255.0, 0x7f / 255.0},
    {0xbc / 255.0, 0xbd / 255.0, 0x22 / 255.0}, {0x17 / 255.0, 0xbe / 255.0, 0xcf / 255.0},
};

/* ---- output ------------------------------------------------------------ */

/* A growing byte buffer that cairo's stream writers append to. */
typedef struct {
    unsigned char *p;
    size_t n, cap;
} membuf;

/* cairo write callback: appends len bytes to the membuf. */
static cairo_status_t membuf_write(void *closure, const unsigned char *data, unsigned int len) {
    membuf *b = closure;
    if (b->n + len > b->cap) {
        size_t cap = b->cap ? b->cap : 65536;
        while (cap < b->n + len) cap *= 2;
        unsigned char *p = realloc(b->p, cap);
        if (!p) return CAIRO_STATUS_NO_MEMORY;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, data, len);
    b->n += len;
    return CAIRO_STATUS_SUCCESS;
}

/* Returns 1 if path ends with ext (ASCII, any case). */
static int has_ext(const char *path, const char *ext) {
    size_t n = strlen(path), m = strlen(ext);
    if (n < m) return 0;
    for (size_t i = 0; i < m; i++) {
        char c = path[n - m + i];
        if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
        if (c != ext[i]) return 0;
    }
    return 1;
}

typedef void (*draw_fn)(cairo_t *cr, double w, double h, const void *ctx);

/* Renders a w x h picture with draw() on a white page into PNG or SVG
** (by path's extension) and writes it atomically to path. */
static rn_status render(const char *path, int w, int h, draw_fn draw, const void *ctx, rn_error *err) {
    int png = has_ext(path, ".png");
    membuf mb = {NULL, 0, 0};
    cairo_surface_t *sf;
    cairo_status_t st;
    rn_status s;
    if (!png && !has_ext(path, ".svg"))
        return rn_fail(err, RN_ERR_ARG, "%s: unknown picture format (expected a .png or .svg path)", path);
    sf = png ? cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h)
             : cairo_svg_surface_create_for_stream(membuf_write, &mb, w, h);
    st = cairo_surface_status(sf);
    if (st == CAIRO_STATUS_SUCCESS) {
        cairo_t *cr = cairo_create(sf);
        cairo_set_source_rgb(cr, 1, 1, 1);
        cairo_paint(cr);
        cairo_select_font_face(cr, FONT, CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
        draw(cr, w, h, ctx);
        st = cairo_status(cr);
        cairo_destroy(cr);
    }
    if (st == CAIRO_STATUS_SUCCESS && png) st = cairo_surface_write_to_png_stream(sf, membuf_write, &mb);
    cairo_surface_finish(sf);
    if (st == CAIRO_STATUS_SUCCESS) st = cairo_surface_status(sf);
    cairo_surface_destroy(sf);
    if (st != CAIRO_STATUS_SUCCESS)
        s = rn_fail(err, st == CAIRO_STATUS_NO_MEMORY ? RN_ERR_NOMEM : RN_ERR_IO, "%s: drawing failed: %s", path,
                    cairo_status_to_string(st));
    else
        s = rn_file_write_atomic(path, mb.p, mb.n, err);
    free(mb.p);
    return s;
}

/* ---- text -------------------------------------------------------------- */

/* Sets the font size and weight. */
static void font(cairo_t *cr, double size, int bold) {
    cairo_select_font_face(cr, FONT, CAIRO_FONT_SLANT_NORMAL, bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
}

/* The advance width of s in the current font. */
static double text_w(cairo_t *cr, const char *s) {
    cairo_text_extents_t te;
    cairo_text_extents(cr, s, &te);
    return te.x_advance;
}

/* Draws s with its anchor at (x, y): ax 0/0.5/1 = left/centre/right,
** ay 0/0.5/1 = top/middle/bottom of the font's line box, so labels of one
** row line up whatever their letters. */
static void text_at(cairo_t *cr, const char *s, double x, double y, double ax, double ay) {
    cairo_font_extents_t fe;
    cairo_font_extents(cr, &fe);
    double base = y + fe.ascent - ay * (fe.ascent + fe.descent);
    cairo_move_to(cr, x - ax * text_w(cr, s), base);
    cairo_show_text(cr, s);
}

/* Draws s rotated a quarter turn anticlockwise (reading upwards), with the
** anchor in the rotated frame as in text_at. */
static void text_up(cairo_t *cr, const char *s, double x, double y, double ax, double ay) {
    cairo_save(cr);
    cairo_translate(cr, x, y);
    cairo_rotate(cr, -PI / 2);
    text_at(cr, s, 0, 0, ax, ay);
    cairo_restore(cr);
}

/* Copies s into buf, cut with "..." so it is at most maxw wide. */
static const char *fit_text(cairo_t *cr, const char *s, double maxw, char *buf, size_t cap) {
    size_t n;
    snprintf(buf, cap, "%s", s);
    if (text_w(cr, buf) <= maxw) return buf;
    for (n = strlen(buf); n > 0; n--) {
        while (n > 0 && ((unsigned char)buf[n] & 0xC0) == 0x80) n--; /* keep UTF-8 whole */
        if (n + 4 > cap) continue;
        memcpy(buf + n, "...", 4);
        if (text_w(cr, buf) <= maxw) break;
    }
    return buf;
}

/* ---- axes -------------------------------------------------------------- */

#define MAX_TICKS 256

/* A panel's plot area and the data range mapped onto it (x0/x1 are log10
** values when logx). */
typedef struct {
    double left, right, top, bottom; /* device coordinates of the plot area */
    double x0, x1, y0, y1;
    int logx;
} axes;

/* Ticks of one axis: positions (data units), labels, and whether labelled. */
typedef struct {
    int n;
    double v[MAX_TICKS];
    char label[MAX_TICKS][24];
    int major[MAX_TICKS];
} ticks;

/* Device x of data x. */
static double dev_x(const axes *a, double x) {
    double t = ((a->logx ? log10(x) : x) - a->x0) / (a->x1 - a->x0);
    return a->left + t * (a->right - a->left);
}

/* Device y of data y. */
static double dev_y(const axes *a, double y) {
    return a->bottom - (y - a->y0) / (a->y1 - a->y0) * (a->bottom - a->top);
}

/* A round step (1, 2 or 5 times a power of ten) giving about 5 intervals. */
static double nice_step(double range) {
    double raw = range / 5.0, mag = pow(10.0, floor(log10(raw))), f = raw / mag;
    return (f < 1.5 ? 1.0 : f < 3.0 ? 2.0 : f < 7.0 ? 5.0 : 10.0) * mag;
}

/* Formats v with 3 significant digits, exponents short: "2.5e6", "1e-7". */
static void fmt_sci(double v, char *buf, size_t cap) {
    char tmp[32], *e, *d;
    snprintf(tmp, sizeof tmp, "%.3g", v);
    e = strchr(tmp, 'e');
    if (e) {
        d = e + 1;
        if (*d == '+') memmove(d, d + 1, strlen(d));
        if (*d == '-') d++;
        while (d[0] == '0' && d[1]) memmove(d, d + 1, strlen(d));
    }
    if (cap > 0) {
        size_t n = strlen(tmp) < cap ? strlen(tmp) : cap - 1;
        memcpy(buf, tmp, n);
        buf[n] = '\0';
    }
}

/* Linear ticks: the multiples of a round step inside [lo, hi], labelled with
** just enough decimals for the step. */
static void linear_ticks(double lo, double hi, ticks *t) {
    double step = nice_step(hi - lo);
    int dec = step >= 1.0 ? 0 : (int)ceil(-log10(step) - 1e-9);
    int sci = fmax(fabs(lo), fabs(hi)) >= 1e6 || step < 1e-5;
    t->n = 0;
    for (double k = ceil(lo / step - 1e-9); k * step <= hi + 1e-9 * step && t->n < MAX_TICKS; k++) {
        double v = k * step;
        if (fabs(v) < step * 1e-9) v = 0.0;
        t->v[t->n] = v;
        t->major[t->n] = 1;
        if (sci)
            fmt_sci(v, t->label[t->n], sizeof t->label[0]);
        else
            snprintf(t->label[t->n], sizeof t->label[0], "%.*f", dec, v);
        t->n++;
    }
}

/* Formats m*10^e: plain ("0.01", "200") when sci is 0, else "1e-5" style. */
static void fmt_pow10(int m, int e, int sci, char *buf, size_t cap) {
    if (!sci)
        snprintf(buf, cap, "%g", m * pow(10.0, e));
    else
        snprintf(buf, cap, "%de%d", m, e);
}

/* Log ticks over [10^lo, 10^hi]: decades labelled (only every n-th when
** there are more than 10, so labels do not collide), 2..9 unlabelled minor
** ticks; when fewer than two decades are inside, 2 and 5 are labelled too.
** All labels are plain numbers when the range stays within 1e-3..1e3, all
** "1e-5" style otherwise, so one axis never mixes the two. */
static void log_ticks(double lo, double hi, ticks *t) {
    int majors = 0, every = (int)ceil((hi - lo) / 10.0);
    int sci = floor(lo) < -3 || ceil(hi) > 3;
    if (every < 1) every = 1;
    t->n = 0;
    for (int pass = 0; pass < 2; pass++) {
        t->n = 0;
        for (int e = (int)floor(lo); e <= (int)ceil(hi) && t->n < MAX_TICKS; e++) {
            for (int m = 1; m <= 9 && t->n < MAX_TICKS; m++) {
                double lv = e + log10((double)m);
                if (lv < lo - 1e-9 || lv > hi + 1e-9) continue;
                int lab = (m == 1 && e % every == 0) || (pass == 1 && (m == 2 || m == 5));
                t->v[t->n] = m * pow(10.0, e);
                t->major[t->n] = lab;
                t->label[t->n][0] = '\0';
                if (lab) fmt_pow10(m, e, sci, t->label[t->n], sizeof t->label[0]);
                majors += pass == 0 && m == 1;
                t->n++;
            }
        }
        if (majors >= 2) break;
    }
}

/* ---- charts ------------------------------------------------------------ */

/* One panel: a rectangle of the page and what to draw in it. */
typedef struct {
    double x, y, w, h;
    const char *title, *xlabel, *ylabel;
    const rn_series *s;
    int ns, logx, color0; /* series i gets tab10[(color0 + i) % 10] */
    double mark_x, mark_y;
} chart;

/* Returns 1 if (x, y) is a point the chart can place. */
static int usable(const chart *c, double x, double y) {
    return isfinite(x) && isfinite(y) && (!c->logx || x > 0);
}

/* Finds the data range over all usable points (and the marker), padded by
** 5% each side like matplotlib; a degenerate range is widened. */
static void data_range(const chart *c, axes *a) {
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (int k = 0; k < c->ns; k++)
        for (int i = 0; i < c->s[k].n; i++) {
            double x = c->s[k].x[i], y = c->s[k].y[i];
            if (!usable(c, x, y)) continue;
            if (c->logx) x = log10(x);
            x0 = fmin(x0, x), x1 = fmax(x1, x), y0 = fmin(y0, y), y1 = fmax(y1, y);
        }
    if (isfinite(c->mark_x) && (!c->logx || c->mark_x > 0)) {
        double mx = c->logx ? log10(c->mark_x) : c->mark_x;
        x0 = fmin(x0, mx), x1 = fmax(x1, mx);
        if (isfinite(c->mark_y)) y0 = fmin(y0, c->mark_y), y1 = fmax(y1, c->mark_y);
    }
    if (!(x0 <= x1)) x0 = 0, x1 = 1;
    if (!(y0 <= y1)) y0 = 0, y1 = 1;
    if (x1 - x0 < 1e-12 * fmax(1.0, fabs(x0))) x0 -= 0.5, x1 += 0.5;
    if (y1 - y0 < 1e-12 * fmax(1.0, fabs(y0))) {
        double d = y0 != 0 ? fabs(y0) * 0.1 : 0.5;
        y0 -= d, y1 += d;
    }
    double px = 0.05 * (x1 - x0), py = 0.05 * (y1 - y0);
    a->x0 = x0 - px, a->x1 = x1 + px, a->y0 = y0 - py, a->y1 = y1 + py;
    a->logx = c->logx;
}

/* Lays out the plot area inside the panel, leaving room for the title,
** the tick labels (measured) and the axis labels. */
static void layout(cairo_t *cr, const chart *c, const ticks *ty, axes *a) {
    double maxw = 0;
    font(cr, 11, 0);
    for (int i = 0; i < ty->n; i++) maxw = fmax(maxw, text_w(cr, ty->label[i]));
    a->left = c->x + 12 + (c->ylabel ? 22 : 0) + maxw + 8;
    a->right = c->x + c->w - 24;
    a->top = c->y + (c->title ? 44 : 16);
    a->bottom = c->y + c->h - 28 - (c->xlabel ? 22 : 0);
}

/* Draws the grid, the frame, the ticks with their labels, the axis labels and the title. */
static void draw_axes(cairo_t *cr, const chart *c, const axes *a, const ticks *tx, const ticks *ty) {
    cairo_set_line_width(cr, 1);
    for (int i = 0; i < tx->n; i++) {
        double x = floor(dev_x(a, tx->v[i])) + 0.5;
        cairo_set_source_rgb(cr, tx->major[i] ? 0.88 : 0.95, tx->major[i] ? 0.88 : 0.95, tx->major[i] ? 0.88 : 0.95);
        cairo_move_to(cr, x, a->top), cairo_line_to(cr, x, a->bottom), cairo_stroke(cr);
    }
    for (int i = 0; i < ty->n; i++) {
        double y = floor(dev_y(a, ty->v[i])) + 0.5;
        cairo_set_source_rgb(cr, 0.88, 0.88, 0.88);
        cairo_move_to(cr, a->left, y), cairo_line_to(cr, a->right, y), cairo_stroke(cr);
    }
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_rectangle(cr, floor(a->left) + 0.5, floor(a->top) + 0.5, floor(a->right) - floor(a->left),
                    floor(a->bottom) - floor(a->top));
    cairo_stroke(cr);
    font(cr, 11, 0);
    for (int i = 0; i < tx->n; i++) {
        double x = floor(dev_x(a, tx->v[i])) + 0.5, len = tx->major[i] ? 5 : 3;
        cairo_move_to(cr, x, a->bottom), cairo_line_to(cr, x, a->bottom + len), cairo_stroke(cr);
        if (tx->major[i]) text_at(cr, tx->label[i], x, a->bottom + 7, 0.5, 0);
    }
    for (int i = 0; i < ty->n; i++) {
        double y = floor(dev_y(a, ty->v[i])) + 0.5;
        cairo_move_to(cr, a->left - 5, y), cairo_line_to(cr, a->left, y), cairo_stroke(cr);
        text_at(cr, ty->label[i], a->left - 8, y, 1, 0.5);
    }
    font(cr, 13, 0);
    if (c->xlabel) text_at(cr, c->xlabel, (a->left + a->right) / 2, c->y + c->h - 10, 0.5, 1);
    if (c->ylabel) text_up(cr, c->ylabel, c->x + 10, (a->top + a->bottom) / 2, 0.5, 0);
    font(cr, 15, 1);
    if (c->title) text_at(cr, c->title, (a->left + a->right) / 2, c->y + 12, 0.5, 0);
}

/* Draws each series as a polyline, broken at unusable points; a lone
** point between breaks becomes a dot. Clipped to the plot area. */
static void draw_series(cairo_t *cr, const chart *c, const axes *a) {
    cairo_save(cr);
    cairo_rectangle(cr, a->left, a->top, a->right - a->left, a->bottom - a->top);
    cairo_clip(cr);
    cairo_set_line_width(cr, 2);
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
    cairo_set_line_cap(cr, CAIRO_LINE_CAP_ROUND);
    for (int k = 0; k < c->ns; k++) {
        const rn_series *s = &c->s[k];
        const color *col = &tab10[(c->color0 + k) % 10];
        cairo_set_source_rgb(cr, col->r, col->g, col->b);
        for (int i = 0; i < s->n;) {
            int j = i;
            while (j < s->n && usable(c, s->x[j], s->y[j])) j++;
            if (j - i == 1) {
                cairo_arc(cr, dev_x(a, s->x[i]), dev_y(a, s->y[i]), 2.5, 0, 2 * PI);
                cairo_fill(cr);
            }
            for (int p = i; j - i > 1 && p < j; p++)
                (p == i ? cairo_move_to : cairo_line_to)(cr, dev_x(a, s->x[p]), dev_y(a, s->y[p]));
            if (j - i > 1) cairo_stroke(cr);
            i = j > i ? j : i + 1;
        }
    }
    cairo_restore(cr);
}

/* Draws the marker: a red dot with its x value beside it, or a dashed
** vertical line when mark_y is not a number. */
static void draw_marker(cairo_t *cr, const chart *c, const axes *a) {
    char lab[48];
    double x, y;
    if (!isfinite(c->mark_x) || (c->logx && c->mark_x <= 0)) return;
    x = dev_x(a, c->mark_x);
    snprintf(lab, sizeof lab, c->logx ? "%.2e" : "%.4g", c->mark_x);
    cairo_set_source_rgb(cr, 1, 0, 0);
    if (!isfinite(c->mark_y)) {
        double dash[] = {6, 4};
        cairo_save(cr);
        cairo_set_dash(cr, dash, 2, 0);
        cairo_set_line_width(cr, 1.5);
        cairo_move_to(cr, x, a->top), cairo_line_to(cr, x, a->bottom), cairo_stroke(cr);
        cairo_restore(cr);
        y = a->top + 14;
    } else {
        y = dev_y(a, c->mark_y);
        cairo_arc(cr, x, y, 6, 0, 2 * PI);
        cairo_fill(cr);
    }
    font(cr, 12, 1);
    double tw = text_w(cr, lab), tx = x + 10 + tw > a->right - 4 ? x - 10 - tw : x + 10;
    double ty = y - 10 < a->top + 8 ? y + 10 : y - 10;
    cairo_set_source_rgba(cr, 1, 1, 1, 0.8);
    cairo_rectangle(cr, tx - 3, ty - 9, tw + 6, 18);
    cairo_fill(cr);
    cairo_set_source_rgb(cr, 0.8, 0, 0);
    text_at(cr, lab, tx, ty, 0, 0.5);
}

/* Counts the chart's points falling in a device rectangle (for the legend). */
static int points_in(const chart *c, const axes *a, double x, double y, double w, double h) {
    int n = 0;
    for (int k = 0; k < c->ns; k++)
        for (int i = 0; i < c->s[k].n; i++) {
            if (!usable(c, c->s[k].x[i], c->s[k].y[i])) continue;
            double px = dev_x(a, c->s[k].x[i]), py = dev_y(a, c->s[k].y[i]);
            n += px >= x && px <= x + w && py >= y && py <= y + h;
        }
    return n;
}

/* Draws the legend in the corner that hides the fewest points (tried in
** matplotlib's order: upper right, upper left, lower left, lower right). */
static void draw_legend(cairo_t *cr, const chart *c, const axes *a) {
    double w = 0, row = 20, h, bx = 0, by = 0;
    int rows = 0, best = -1;
    font(cr, 12, 0);
    for (int k = 0; k < c->ns; k++)
        if (c->s[k].label) w = fmax(w, text_w(cr, c->s[k].label)), rows++;
    if (!rows) return;
    w += 52, h = rows * row + 10;
    for (int corner = 0; corner < 4; corner++) {
        double x = corner == 0 || corner == 3 ? a->right - 10 - w : a->left + 10;
        double y = corner < 2 ? a->top + 10 : a->bottom - 10 - h;
        int n = points_in(c, a, x, y, w, h);
        if (best < 0 || n < best) best = n, bx = x, by = y;
    }
    cairo_set_source_rgba(cr, 1, 1, 1, 0.85);
    cairo_rectangle(cr, bx, by, w, h);
    cairo_fill_preserve(cr);
    cairo_set_source_rgb(cr, 0.8, 0.8, 0.8);
    cairo_set_line_width(cr, 1);
    cairo_stroke(cr);
    for (int k = 0, r = 0; k < c->ns; k++) {
        if (!c->s[k].label) continue;
        const color *col = &tab10[(c->color0 + k) % 10];
        double y = by + 5 + row * (r++ + 0.5);
        cairo_set_source_rgb(cr, col->r, col->g, col->b);
        cairo_set_line_width(cr, 2);
        cairo_move_to(cr, bx + 8, y), cairo_line_to(cr, bx + 36, y), cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0, 0, 0);
        text_at(cr, c->s[k].label, bx + 44, y, 0, 0.5);
    }
}

/* Draws one chart panel: range, ticks, layout, axes, lines, marker, legend. */
static void draw_chart(cairo_t *cr, const chart *c) {
    axes a;
    ticks tx, ty;
    data_range(c, &a);
    if (a.logx)
        log_ticks(a.x0, a.x1, &tx);
    else
        linear_ticks(a.x0, a.x1, &tx);
    linear_ticks(a.y0, a.y1, &ty);
    layout(cr, c, &ty, &a);
    draw_axes(cr, c, &a, &tx, &ty);
    draw_series(cr, c, &a);
    draw_marker(cr, c, &a);
    draw_legend(cr, c, &a);
}

/* render() callback drawing one chart over the whole page. */
static void draw_one_chart(cairo_t *cr, double w, double h, const void *ctx) {
    chart c = *(const chart *)ctx;
    c.x = 0, c.y = 0, c.w = w, c.h = h;
    draw_chart(cr, &c);
}

/* Checks the series' arrays are there for their lengths. */
static rn_status check_series(const char *path, const rn_series *s, int ns, rn_error *err) {
    if (ns < 0 || (ns > 0 && !s)) return rn_fail(err, RN_ERR_ARG, "%s: no series given (%d)", path, ns);
    for (int k = 0; k < ns; k++)
        if (s[k].n < 0 || (s[k].n > 0 && (!s[k].x || !s[k].y)))
            return rn_fail(err, RN_ERR_ARG, "%s: series %d has %d points but no x or y array", path, k, s[k].n);
    return RN_OK;
}

/* A line chart, 800x500. */
rn_status rn_plot_lines(const char *path, const char *title, const char *xlabel, const char *ylabel,
                        const rn_series *s, int ns, int logx, double mark_x, double mark_y, rn_error *err) {
    chart c = {0, 0, 0, 0, title, xlabel, ylabel, s, ns, logx != 0, 0, mark_x, mark_y};
    rn_status st;
    if (!path || !*path) return rn_fail(err, RN_ERR_ARG, "rn_plot_lines: no path");
    if ((st = check_series(path, s, ns, err)) != RN_OK) return st;
    return render(path, 800, 500, draw_one_chart, &c, err);
}

/* The two panels of the training curves. */
typedef struct {
    chart loss, acc;
} training;

/* render() callback: loss on the left half, accuracy on the right. */
static void draw_training(cairo_t *cr, double w, double h, const void *ctx) {
    training t = *(const training *)ctx;
    t.loss.x = 0, t.loss.y = 0, t.loss.w = w / 2, t.loss.h = h;
    t.acc.x = w / 2, t.acc.y = 0, t.acc.w = w / 2, t.acc.h = h;
    draw_chart(cr, &t.loss);
    draw_chart(cr, &t.acc);
}

/* Training curves, 1200x450. */
rn_status rn_plot_training(const char *path, const double *epochs, const double *train_loss,
                           const double *valid_loss, const double *acc, int n, rn_error *err) {
    rn_series loss[2], a[1];
    int nl = 0, na = 0;
    if (!path || !*path) return rn_fail(err, RN_ERR_ARG, "rn_plot_training: no path");
    if (n < 0 || (n > 0 && (!epochs || !train_loss)))
        return rn_fail(err, RN_ERR_ARG, "%s: %d epochs but no epoch or train loss array", path, n);
    loss[nl++] = (rn_series){"train", epochs, train_loss, n};
    if (valid_loss) loss[nl++] = (rn_series){"valid", epochs, valid_loss, n};
    if (acc) a[na++] = (rn_series){"accuracy", epochs, acc, n};
    training t = {
        {0, 0, 0, 0, "Loss", "epoch", "loss", loss, nl, 0, 0, NAN, NAN},
        {0, 0, 0, 0, "Accuracy", "epoch", "accuracy", a, na, 0, 2, NAN, NAN},
    };
    return render(path, 1200, 450, draw_training, &t, err);
}

/* ---- confusion matrix -------------------------------------------------- */

typedef struct {
    int k;
    const char *const *names;
    const int64_t *counts;
} confusion;

/* matplotlib's "Blues" colour map at t in [0, 1] (ColorBrewer's nine stops). */
static color blues(double t) {
    static const unsigned stops[9] = {0xf7fbff, 0xdeebf7, 0xc6dbef, 0x9ecae1, 0x6baed6,
                                      0x4292c6, 0x2171b5, 0x08519c, 0x08306b};
    double f = fmin(fmax(t, 0.0), 1.0) * 8;
    int i = (int)f < 8 ? (int)f : 7;
    double u = f - i;
    unsigned a = stops[i], b = stops[i + 1];
    color c = {((1 - u) * (a >> 16 & 255) + u * (b >> 16 & 255)) / 255.0,
               ((1 - u) * (a >> 8 & 255) + u * (b >> 8 & 255)) / 255.0,
               ((1 - u) * (a & 255) + u * (b & 255)) / 255.0};
    return c;
}

/* The name of class i: names[i], or its index. */
static const char *class_name(const confusion *m, int i, char *buf, size_t cap) {
    if (m->names && m->names[i]) return m->names[i];
    snprintf(buf, cap, "%d", i);
    return buf;
}

/* Draws the counts of every cell centred in it, white on dark cells (count
** above half the largest, as fastai does), shrinking the font to fit. */
static void draw_counts(cairo_t *cr, const confusion *m, double gx, double gy, double cell, int64_t max) {
    char s[32];
    double size = fmin(14, cell * 0.4);
    if (size < 5) return;
    for (int i = 0; i < m->k; i++)
        for (int j = 0; j < m->k; j++) {
            int64_t v = m->counts[(size_t)i * m->k + j];
            snprintf(s, sizeof s, "%lld", (long long)v);
            font(cr, size, 0);
            double tw = text_w(cr, s);
            if (tw > cell * 0.9) font(cr, size * cell * 0.9 / tw, 0);
            if (v > max / 2.0)
                cairo_set_source_rgb(cr, 1, 1, 1);
            else
                cairo_set_source_rgb(cr, 0, 0, 0);
            text_at(cr, s, gx + (j + 0.5) * cell, gy + (i + 0.5) * cell, 0.5, 0.5);
        }
}

/* Fills the cells with their Blues colour: as rectangles for small k (crisp
** in SVG), else as a k x k image scaled up with nearest-neighbour sampling
** (a 1000-class matrix would otherwise be a million SVG rectangles). */
static void draw_cells(cairo_t *cr, const confusion *m, double gx, double gy, double cell, int64_t max) {
    int k = m->k;
    if (k <= 64) {
        for (int i = 0; i < k; i++)
            for (int j = 0; j < k; j++) {
                color c = blues(max ? (double)m->counts[(size_t)i * k + j] / (double)max : 0);
                cairo_set_source_rgb(cr, c.r, c.g, c.b);
                cairo_rectangle(cr, gx + j * cell, gy + i * cell, cell + 0.02, cell + 0.02);
                cairo_fill(cr);
            }
        return;
    }
    cairo_surface_t *img = cairo_image_surface_create(CAIRO_FORMAT_RGB24, k, k);
    if (cairo_surface_status(img) == CAIRO_STATUS_SUCCESS) {
        unsigned char *data = cairo_image_surface_get_data(img);
        int stride = cairo_image_surface_get_stride(img);
        cairo_surface_flush(img);
        for (int i = 0; i < k; i++) {
            uint32_t *row = (uint32_t *)(void *)(data + (size_t)i * stride);
            for (int j = 0; j < k; j++) {
                color c = blues(max ? (double)m->counts[(size_t)i * k + j] / (double)max : 0);
                row[j] = (uint32_t)lround(c.r * 255) << 16 | (uint32_t)lround(c.g * 255) << 8 | (uint32_t)lround(c.b * 255);
            }
        }
        cairo_surface_mark_dirty(img);
    }
    cairo_save(cr);
    cairo_translate(cr, gx, gy);
    cairo_scale(cr, cell, cell);
    cairo_set_source_surface(cr, img, 0, 0); /* an error surface puts cr in error: render() reports it */
    cairo_pattern_set_filter(cairo_get_source(cr), CAIRO_FILTER_NEAREST);
    cairo_rectangle(cr, 0, 0, k, k);
    cairo_fill(cr);
    cairo_restore(cr);
    cairo_surface_destroy(img);
}

/* For matrices too big for names: class indices at round intervals on both
** axes (ticks at the cells' centres). */
static void draw_index_ticks(cairo_t *cr, int k, double gx, double gy, double cell) {
    char s[32];
    double step = fmax(1.0, nice_step((double)k)), grid = cell * k;
    font(cr, 10, 0);
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_set_line_width(cr, 1);
    for (double i = 0; i < k; i += step) {
        double c = (i + 0.5) * cell;
        snprintf(s, sizeof s, "%d", (int)i);
        cairo_move_to(cr, gx - 4, gy + c), cairo_line_to(cr, gx, gy + c);
        cairo_move_to(cr, gx + c, gy + grid), cairo_line_to(cr, gx + c, gy + grid + 4);
        cairo_stroke(cr);
        text_at(cr, s, gx - 6, gy + c, 1, 0.5);
        text_at(cr, s, gx + c, gy + grid + 6, 0.5, 0);
    }
}

/* render() callback: title, heat map, counts, names on both axes. */
static void draw_confusion(cairo_t *cr, double w, double h, const void *ctx) {
    const confusion *m = ctx;
    char buf[32], cut[256];
    int64_t max = 0;
    double nsize = fmin(12, 600.0 / m->k * 0.7), namew = 0;
    int show_names = nsize >= 5;
    for (size_t i = 0; i < (size_t)m->k * m->k; i++) max = m->counts[i] > max ? m->counts[i] : max;
    font(cr, nsize, 0);
    for (int i = 0; show_names && i < m->k; i++)
        namew = fmax(namew, text_w(cr, fit_text(cr, class_name(m, i, buf, sizeof buf), 150, cut, sizeof cut)));
    double lab = show_names ? namew : 24; /* names, or the index labels */
    double left = 40 + lab + 10, bottom = 40 + lab + 10, top = 56, right = 30;
    double grid = fmin(w - left - right, h - top - bottom), cell = grid / m->k;
    double gx = left + (w - left - right - grid) / 2, gy = top;
    draw_cells(cr, m, gx, gy, cell, max);
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_set_line_width(cr, 1);
    cairo_rectangle(cr, gx, gy, grid, grid);
    cairo_stroke(cr);
    draw_counts(cr, m, gx, gy, cell, max);
    cairo_set_source_rgb(cr, 0, 0, 0);
    font(cr, nsize, 0);
    for (int i = 0; show_names && i < m->k; i++) {
        const char *s = fit_text(cr, class_name(m, i, buf, sizeof buf), 150, cut, sizeof cut);
        double c = (i + 0.5) * cell;
        text_at(cr, s, gx - 6, gy + c, 1, 0.5);
        text_up(cr, s, gx + c, gy + grid + 6, 1, 0.5);
    }
    if (!show_names) draw_index_ticks(cr, m->k, gx, gy, cell);
    font(cr, 13, 0);
    text_at(cr, "Predicted", gx + grid / 2, h - 12, 0.5, 1);
    text_up(cr, "Actual", 12, gy + grid / 2, 0.5, 0);
    font(cr, 15, 1);
    text_at(cr, "Confusion matrix", gx + grid / 2, 18, 0.5, 0);
}

/* A confusion matrix heat map, 800x800. */
rn_status rn_plot_confusion(const char *path, int k, const char *const *names, const int64_t *counts,
                            rn_error *err) {
    confusion m = {k, names, counts};
    if (!path || !*path) return rn_fail(err, RN_ERR_ARG, "rn_plot_confusion: no path");
    if (k <= 0 || !counts) return rn_fail(err, RN_ERR_ARG, "%s: confusion matrix needs k >= 1 classes and counts (k = %d)", path, k);
    return render(path, 800, 800, draw_confusion, &m, err);
}

/* ---- prediction card --------------------------------------------------- */

typedef struct {
    cairo_surface_t *img;
    int h, w, k;
    const char *const *names;
    const double *probs;
} prediction;

/* Copies an (h,w,3) uint8 image into a new cairo RGB24 surface. */
static cairo_surface_t *image_surface(const uint8_t *rgb, int h, int w) {
    cairo_surface_t *sf = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h);
    if (cairo_surface_status(sf) != CAIRO_STATUS_SUCCESS) return sf;
    unsigned char *data = cairo_image_surface_get_data(sf);
    int stride = cairo_image_surface_get_stride(sf);
    cairo_surface_flush(sf);
    for (int y = 0; y < h; y++) {
        uint32_t *row = (uint32_t *)(void *)(data + (size_t)y * stride);
        const uint8_t *p = rgb + (size_t)y * w * 3;
        for (int x = 0; x < w; x++, p += 3) row[x] = (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
    }
    cairo_surface_mark_dirty(sf);
    return sf;
}

/* Draws the image scaled into a 360 px box on the left, vertically centred
** (sharp pixels when enlarged 3x or more), with a thin grey frame. */
static void draw_picture(cairo_t *cr, const prediction *p, double h) {
    double box = 360, sc = fmin(box / p->w, box / p->h), iw = p->w * sc, ih = p->h * sc;
    double ix = 20 + (box - iw) / 2, iy = 56 + (h - 76 - ih) / 2;
    cairo_save(cr);
    cairo_translate(cr, ix, iy);
    cairo_scale(cr, sc, sc);
    cairo_set_source_surface(cr, p->img, 0, 0);
    cairo_pattern_set_filter(cairo_get_source(cr), sc >= 3 ? CAIRO_FILTER_NEAREST : CAIRO_FILTER_GOOD);
    cairo_rectangle(cr, 0, 0, p->w, p->h);
    cairo_fill(cr);
    cairo_restore(cr);
    cairo_set_source_rgb(cr, 0.6, 0.6, 0.6);
    cairo_set_line_width(cr, 1);
    cairo_rectangle(cr, floor(ix) - 0.5, floor(iy) - 0.5, ceil(iw) + 1, ceil(ih) + 1);
    cairo_stroke(cr);
}

/* Draws prediction i on the right: its name, a bar of its probability over
** a grey 100% track (blue for the first, grey for the others), the percentage. */
static void draw_bar(cairo_t *cr, const prediction *p, int i) {
    char buf[64], cut[256];
    const char *name = p->names[i] ? p->names[i] : "?";
    double pr = isfinite(p->probs[i]) ? fmin(fmax(p->probs[i], 0), 1) : 0, y = 64 + i * 44;
    const color *c = i == 0 ? &tab10[0] : &tab10[7];
    font(cr, 14, i == 0);
    cairo_set_source_rgb(cr, 0, 0, 0);
    text_at(cr, fit_text(cr, name, 370, cut, sizeof cut), 410, y, 0, 0);
    cairo_set_source_rgb(cr, 0.93, 0.93, 0.93);
    cairo_rectangle(cr, 410, y + 20, 290, 14);
    cairo_fill(cr);
    cairo_set_source_rgb(cr, c->r, c->g, c->b);
    cairo_rectangle(cr, 410, y + 20, 290 * pr, 14);
    cairo_fill(cr);
    snprintf(buf, sizeof buf, "%.1f%%", 100 * pr);
    font(cr, 12, 0);
    cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
    text_at(cr, buf, 708, y + 27, 0, 0.5);
}

/* render() callback: title "Prediction: <top name>", the picture, the bars. */
static void draw_prediction(cairo_t *cr, double w, double h, const void *ctx) {
    const prediction *p = ctx;
    char title[256], cut[256];
    draw_picture(cr, p, h);
    for (int i = 0; i < p->k; i++) draw_bar(cr, p, i);
    snprintf(title, sizeof title, "Prediction%s%s", p->k > 0 && p->names[0] ? ": " : "",
             p->k > 0 && p->names[0] ? p->names[0] : "");
    font(cr, 15, 1);
    cairo_set_source_rgb(cr, 0, 0, 0);
    text_at(cr, fit_text(cr, title, w - 40, cut, sizeof cut), 20, 18, 0, 0);
}

/* An image with its top-k predictions, 800 wide. */
rn_status rn_plot_prediction(const char *path, const uint8_t *rgb, int h, int w, const char *const *names,
                             const double *probs, int k, rn_error *err) {
    prediction p = {NULL, h, w, k, names, probs};
    rn_status s;
    if (!path || !*path) return rn_fail(err, RN_ERR_ARG, "rn_plot_prediction: no path");
    if (!rgb || h <= 0 || w <= 0 || h > 32767 || w > 32767)
        return rn_fail(err, RN_ERR_ARG, "%s: image of %dx%d pixels (expected 1..32767 each, with pixels)", path, h, w);
    if (k < 0 || (k > 0 && (!names || !probs)))
        return rn_fail(err, RN_ERR_ARG, "%s: %d predictions but no names or probabilities", path, k);
    p.img = image_surface(rgb, h, w);
    if (cairo_surface_status(p.img) != CAIRO_STATUS_SUCCESS) {
        s = rn_fail(err, RN_ERR_NOMEM, "%s: cannot hold a %dx%d image: %s", path, h, w,
                    cairo_status_to_string(cairo_surface_status(p.img)));
    } else {
        int ph = (int)fmax(440, 80 + 44.0 * k);
        s = render(path, 800, ph, draw_prediction, &p, err);
    }
    cairo_surface_destroy(p.img);
    return s;
}
