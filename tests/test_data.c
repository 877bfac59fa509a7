/*
** Tests for src/data: image decoding (JPEG and PNG files written here with
** libjpeg and libpng, compared with the pattern they were made from), bad
** files that must each be rejected with a message naming them, and the
** dataset readers (IDX, CIFAR binary, image folders) on small datasets
** generated in a scratch directory, plus Debian's Fashion-MNIST if it is
** installed. Prints failed checks and the rejection messages, and last the
** line "N passed, M failed"; exits non-zero if anything failed.
*/
#include "data/data.h"
#include "check.h"

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jpeglib.h>
#include <png.h>
#include <zlib.h>

/* Counters and the scratch directory, passed to every test. */
typedef struct {
    int pass, fail;
    char dir[256];
} tctx;

/* Reads a whole file into fresh memory (*n bytes); NULL on failure. */
static uint8_t *read_all(const char *path, size_t *n) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long sz = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *b = malloc(sz > 0 ? (size_t)sz : 1);
    if (b && fread(b, 1, (size_t)sz, fp) != (size_t)sz) {
        free(b);
        b = NULL;
    }
    fclose(fp);
    *n = (size_t)sz;
    return b;
}

/* Creates the directory "<scratch>/<rel>" and returns its full path in buf. */
static const char *mkdir_in(const tctx *T, const char *rel, char *buf, size_t cap) {
    path_in(T->dir, rel, buf, cap);
    mkdir(buf, 0755);
    return buf;
}

/* Removes a tree without following symlinks (they are only unlinked). */
static void rm_tree(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            size_t n = strlen(path) + strlen(e->d_name) + 2;
            char *p = malloc(n);
            if (!p) continue;
            snprintf(p, n, "%s/%s", path, e->d_name);
            rm_tree(p);
            free(p);
        }
        if (d) closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

/* The smooth test pattern: R ramps along x, G along y, B along both. */
static uint8_t pat(int x, int y, int ch, int w, int h) {
    if (ch == 0) return (uint8_t)(x * 255 / (w - 1));
    if (ch == 1) return (uint8_t)(y * 255 / (h - 1));
    return (uint8_t)((x + y) * 255 / (w + h - 2));
}

/* Fills an (h,w,3) buffer with the pattern. */
static uint8_t *pattern_rgb(int w, int h) {
    uint8_t *p = malloc((size_t)w * h * 3);
    for (int y = 0; p && y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) p[((size_t)y * w + x) * 3 + c] = pat(x, y, c, w, h);
    return p;
}

/* Mean absolute difference between an image and an (h,w,3) reference. */
static double mae(const rn_image *im, const uint8_t *ref) {
    double s = 0;
    size_t n = (size_t)im->h * im->w * 3;
    for (size_t i = 0; i < n; i++) s += abs((int)im->px[i] - (int)ref[i]);
    return n ? s / (double)n : 1e9;
}

/* ---- writers ------------------------------------------------------------ */

/* Writes an (h,w,comps) image as a quality-95 JPEG in color space cs,
** optionally progressive and with an APP1 (EXIF) payload. */
static int write_jpeg(const char *path, const uint8_t *px, int w, int h, int comps,
                      J_COLOR_SPACE cs, int progressive, const uint8_t *app1, unsigned app1_len) {
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    FILE *fp = fopen(path, "wb");
    if (!fp) return 0;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, fp);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = comps;
    c.in_color_space = cs;
    jpeg_set_defaults(&c);
    if (cs == JCS_CMYK) jpeg_set_colorspace(&c, JCS_CMYK); /* writes the Adobe marker */
    jpeg_set_quality(&c, 95, TRUE);
    if (progressive) jpeg_simple_progression(&c);
    jpeg_start_compress(&c, TRUE);
    if (app1) jpeg_write_marker(&c, JPEG_APP0 + 1, app1, app1_len);
    for (int y = 0; y < h; y++) {
        JSAMPROW row = (JSAMPROW)(px + (size_t)y * w * comps);
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    return fclose(fp) == 0;
}

/* Writes a PNG of the given type from raw rows (PNG byte order). */
static int write_png(const char *path, int w, int h, int color, int depth, int interlace,
                     const uint8_t *data, size_t stride, const png_color *pal, int npal,
                     const uint8_t *trans, int ntrans) {
    FILE *fp = fopen(path, "wb");
    if (!fp) return 0;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    png_bytep *rows = malloc((size_t)h * sizeof *rows);
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        fclose(fp);
        free(rows);
        return 0;
    }
    png_init_io(png, fp);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, color,
                 interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (pal) png_set_PLTE(png, info, pal, npal);
    if (trans) png_set_tRNS(png, info, trans, ntrans, NULL);
    png_write_info(png, info);
    for (int y = 0; y < h; y++) rows[y] = (png_bytep)(data + (size_t)y * stride);
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    return fclose(fp) == 0;
}

/* Builds an EXIF APP1 payload holding only an orientation tag, in Motorola
** (big = 1) or Intel byte order. Returns its length. */
static unsigned make_exif(uint8_t *b, int orientation, int big) {
    memset(b, 0, 64);
    memcpy(b, "Exif\0\0", 6);
    uint8_t *t = b + 6;
    /* put16/put32 in the chosen order */
#define PUT16(p, v) ((p)[big ? 0 : 1] = (uint8_t)((v) >> 8), (p)[big ? 1 : 0] = (uint8_t)(v))
#define PUT32(p, v) (PUT16((p) + (big ? 0 : 2), (v) >> 16), PUT16((p) + (big ? 2 : 0), (v) & 0xFFFF))
    t[0] = t[1] = big ? 'M' : 'I';
    PUT16(t + 2, 42);
    PUT32(t + 4, 8);          /* IFD0 right after the header */
    PUT16(t + 8, 1);          /* one entry */
    PUT16(t + 10, 0x0112);    /* Orientation */
    PUT16(t + 12, 3);         /* SHORT */
    PUT32(t + 14, 1);         /* count 1 */
    PUT16(t + 18, orientation); /* value, left-justified in the 4-byte field */
    PUT32(t + 22, 0);         /* no next IFD */
#undef PUT16
#undef PUT32
    return 6 + 26;
}

/* Writes an IDX file: magic, dims (big-endian), then `n` data bytes; as
** gzip when gz is set. */
static int write_idx(const char *path, int gz, uint32_t magic, const uint32_t *dims, int ndims,
                     const uint8_t *data, size_t n) {
    uint8_t hdr[16];
    uint32_t v[4] = {magic, 0, 0, 0};
    for (int i = 0; i < ndims; i++) v[1 + i] = dims[i];
    for (int i = 0; i < 1 + ndims; i++)
        for (int j = 0; j < 4; j++) hdr[4 * i + j] = (uint8_t)(v[i] >> (24 - 8 * j));
    size_t hn = 4 * (size_t)(1 + ndims);
    if (!gz) {
        FILE *fp = fopen(path, "wb");
        if (!fp) return 0;
        int ok = fwrite(hdr, 1, hn, fp) == hn && (n == 0 || fwrite(data, 1, n, fp) == n);
        return fclose(fp) == 0 && ok;
    }
    gzFile g = gzopen(path, "wb");
    if (!g) return 0;
    int ok = gzwrite(g, hdr, (unsigned)hn) == (int)hn && (n == 0 || gzwrite(g, data, (unsigned)n) == (int)n);
    return gzclose(g) == Z_OK && ok;
}

/* ---- decoding ----------------------------------------------------------- */

/* Decodes path and checks size and mean error against ref (h,w,3). */
static void expect_decode(tctx *T, const char *label, const char *path, int w, int h,
                          const uint8_t *ref, double max_mae) {
    rn_image im;
    rn_error err = {RN_OK, ""};
    rn_status s = rn_image_decode_file(path, 0, &im, &err);
    if (!CHECK(T, s == RN_OK)) printf("  %s: %s\n", label, err.msg);
    if (s != RN_OK) return;
    CHECK(T, im.w == w && im.h == h && im.c == 3);
    if (im.w == w && im.h == h) {
        double e = mae(&im, ref);
        printf("  %-12s %dx%d mean abs error %.3f\n", label, w, h, e);
        if (max_mae == 0) CHECK(T, e == 0);
        else CHECK(T, e < max_mae);
    }
    rn_image_free(&im);
}

/* Baseline, grayscale, CMYK and progressive JPEGs against their pattern. */
static void test_jpeg(tctx *T) {
    char p[512];
    const int w = 64, h = 48;
    uint8_t *rgb = pattern_rgb(w, h);
    uint8_t *gray = malloc((size_t)w * h), *gray3 = malloc((size_t)w * h * 3);
    uint8_t *cmyk = malloc((size_t)w * h * 4), *cmyk_ref = malloc((size_t)w * h * 3);
    for (int i = 0; i < w * h; i++) {
        int x = i % w, y = i / w;
        gray[i] = pat(x, y, 2, w, h);
        memset(gray3 + 3 * i, gray[i], 3);
        /* inverted (Adobe) CMYK as Photoshop stores it: value 255 = no ink */
        uint8_t k = (uint8_t)(128 + y * 127 / (h - 1));
        for (int c = 0; c < 3; c++) {
            cmyk[4 * i + c] = pat(x, y, c, w, h);
            cmyk_ref[3 * i + c] = (uint8_t)((cmyk[4 * i + c] * k + 127) / 255);
        }
        cmyk[4 * i + 3] = k;
    }
    CHECK(T, write_jpeg(path_in(T->dir, "rgb.jpg", p, sizeof p), rgb, w, h, 3, JCS_RGB, 0, NULL, 0));
    expect_decode(T, "jpeg rgb", p, w, h, rgb, 3);
    CHECK(T, write_jpeg(path_in(T->dir, "gray.jpg", p, sizeof p), gray, w, h, 1, JCS_GRAYSCALE, 0, NULL, 0));
    expect_decode(T, "jpeg gray", p, w, h, gray3, 3);
    CHECK(T, write_jpeg(path_in(T->dir, "cmyk.jpg", p, sizeof p), cmyk, w, h, 4, JCS_CMYK, 0, NULL, 0));
    expect_decode(T, "jpeg cmyk", p, w, h, cmyk_ref, 3);
    CHECK(T, write_jpeg(path_in(T->dir, "prog.jpg", p, sizeof p), rgb, w, h, 3, JCS_RGB, 1, NULL, 0));
    expect_decode(T, "jpeg progr.", p, w, h, rgb, 3);
    /* the same bytes decoded from memory give the same pixels */
    size_t n;
    uint8_t *buf = read_all(p, &n);
    rn_image a, b;
    rn_error err = {RN_OK, ""};
    CHECK(T, buf && rn_image_decode_mem(buf, n, "mem.jpg", 0, &a, &err) == RN_OK);
    CHECK(T, rn_image_decode_file(p, 0, &b, &err) == RN_OK);
    CHECK(T, a.px && b.px && a.w == b.w && a.h == b.h && !memcmp(a.px, b.px, (size_t)a.w * a.h * 3));
    rn_image_free(&a);
    rn_image_free(&b);
    CHECK(T, a.px == NULL && a.w == 0);
    free(buf);
    free(rgb);
    free(gray);
    free(gray3);
    free(cmyk);
    free(cmyk_ref);
}

/* Colour class of a pixel: 'r' red, 'b' blue, 'g' grey, '?' otherwise. */
static char color_at(const rn_image *im, int y, int x) {
    const uint8_t *q = im->px + ((size_t)y * im->w + x) * 3;
    if (q[0] > 200 && q[1] < 60 && q[2] < 60) return 'r';
    if (q[0] < 60 && q[1] < 60 && q[2] > 200) return 'b';
    if (abs(q[0] - 128) < 20 && abs(q[1] - 128) < 20 && abs(q[2] - 128) < 20) return 'g';
    return '?';
}

/* All eight EXIF orientations: a 48x32 grey image with a red block in the
** stored top-left and a blue one in the stored top-right must come out with
** the blocks in the corners the EXIF specification says. */
static void test_orientation(tctx *T) {
    /* where stored TL and TR end up: 0 TL, 1 TR, 2 BR, 3 BL */
    static const int tl_to[9] = {0, 0, 1, 2, 3, 0, 1, 2, 3};
    static const int tr_to[9] = {0, 1, 0, 3, 2, 3, 2, 1, 0};
    const int w = 48, h = 32;
    uint8_t *px = malloc((size_t)w * h * 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *q = px + ((size_t)y * w + x) * 3;
            int tl = y < 16 && x < 16, tr = y < 16 && x >= w - 16;
            q[0] = tl ? 255 : tr ? 0 : 128;
            q[1] = tl || tr ? 0 : 128;
            q[2] = tr ? 255 : tl ? 0 : 128;
        }
    for (int o = 1; o <= 8; o++) {
        char name[32], p[512];
        uint8_t exif[64];
        unsigned len = make_exif(exif, o, o % 2 == 0);
        snprintf(name, sizeof name, "orient%d.jpg", o);
        CHECK(T, write_jpeg(path_in(T->dir, name, p, sizeof p), px, w, h, 3, JCS_RGB, 0, exif, len));
        rn_image im;
        rn_error err = {RN_OK, ""};
        if (!CHECK(T, rn_image_decode_file(p, 0, &im, &err) == RN_OK)) {
            printf("  %s\n", err.msg);
            continue;
        }
        int sw = o >= 5;
        CHECK(T, im.w == (sw ? h : w) && im.h == (sw ? w : h));
        int cy[4] = {8, 8, im.h - 9, im.h - 9}, cx[4] = {8, im.w - 9, im.w - 9, 8};
        char got[5] = {0}, want[5] = "gggg";
        for (int c = 0; c < 4; c++) got[c] = color_at(&im, cy[c], cx[c]);
        want[tl_to[o]] = 'r';
        want[tr_to[o]] = 'b';
        if (!CHECK(T, strcmp(got, want) == 0))
            printf("  orientation %d: corners TL,TR,BR,BL %s, expected %s\n", o, got, want);
        rn_image_free(&im);
    }
    free(px);
}

/* DCT scaling: a 400x300 JPEG decodes at 2/8 for min_side 70 (75 >= 70 but
** 38 < 70) and at full size for min_side 300 or 0; the scaled image still
** matches the pattern. */
static void test_dct_scaling(tctx *T) {
    char p[512];
    const int w = 400, h = 300;
    uint8_t *rgb = pattern_rgb(w, h);
    CHECK(T, write_jpeg(path_in(T->dir, "big.jpg", p, sizeof p), rgb, w, h, 3, JCS_RGB, 0, NULL, 0));
    static const int mins[4] = {70, 300, 0, 1};
    static const int ew[4] = {100, 400, 400, 50}, eh[4] = {75, 300, 300, 38};
    for (int i = 0; i < 4; i++) {
        rn_image im;
        rn_error err = {RN_OK, ""};
        if (!CHECK(T, rn_image_decode_file(p, mins[i], &im, &err) == RN_OK)) continue;
        if (!CHECK(T, im.w == ew[i] && im.h == eh[i]))
            printf("  min_side %d gave %dx%d, expected %dx%d\n", mins[i], im.w, im.h, ew[i], eh[i]);
        /* compare with the pattern sampled at the centres of the scaled pixels */
        double e = 0;
        int cnt = 0;
        for (int y = 2; y < im.h - 2; y += 3)
            for (int x = 2; x < im.w - 2; x += 3)
                for (int c = 0; c < 3; c++) {
                    int sx = (int)((x + 0.5) * w / im.w), sy = (int)((y + 0.5) * h / im.h);
                    e += abs(im.px[((size_t)y * im.w + x) * 3 + c] - pat(sx, sy, c, w, h));
                    cnt++;
                }
        CHECK(T, cnt > 0 && e / cnt < 4);
        rn_image_free(&im);
    }
    free(rgb);
}

/* PNG colour types, bit depths and interlacing, compared exactly. */
static void test_png(tctx *T) {
    char p[512];
    const int w = 37, h = 23; /* odd sizes: partial Adam7 passes, odd row bytes */
    size_t n = (size_t)w * h;
    uint8_t *rgb = pattern_rgb(w, h), *ref = malloc(n * 3);
    uint8_t *rgba = malloc(n * 4), *idx = malloc(n), *g8 = malloc(n), *b16 = malloc(n * 6);
    uint8_t *g1 = calloc((size_t)h * ((w + 7) / 8), 1);
    png_color pal[16];
    uint8_t trans[16];
    for (int i = 0; i < 16; i++) {
        pal[i] = (png_color){(uint8_t)(i * 17), (uint8_t)(255 - i * 13), (uint8_t)(i * i)};
        trans[i] = (uint8_t)(i * 16);
    }
    for (size_t i = 0; i < n; i++) {
        int x = (int)(i % w), y = (int)(i / w);
        memcpy(rgba + 4 * i, rgb + 3 * i, 3);
        rgba[4 * i + 3] = (uint8_t)(x * 7);
        idx[i] = (uint8_t)((x + 3 * y) % 16);
        g8[i] = (uint8_t)(x * 5 + y * 3);
        for (int c = 0; c < 3; c++) {
            unsigned v = (unsigned)(x * 1771 + y * 997 + c * 20011) & 0xFFFF;
            b16[6 * i + 2 * c] = (uint8_t)(v >> 8);
            b16[6 * i + 2 * c + 1] = (uint8_t)v;
        }
        if ((x + y) % 3 == 0) g1[(size_t)y * ((w + 7) / 8) + x / 8] |= (uint8_t)(0x80 >> (x % 8));
    }
    CHECK(T, write_png(path_in(T->dir, "rgb.png", p, sizeof p), w, h, PNG_COLOR_TYPE_RGB, 8, 0, rgb, (size_t)w * 3, NULL, 0, NULL, 0));
    expect_decode(T, "png rgb", p, w, h, rgb, 0);
    CHECK(T, write_png(path_in(T->dir, "rgba.png", p, sizeof p), w, h, PNG_COLOR_TYPE_RGBA, 8, 0, rgba, (size_t)w * 4, NULL, 0, NULL, 0));
    expect_decode(T, "png rgba", p, w, h, rgb, 0);
    CHECK(T, write_png(path_in(T->dir, "inter.png", p, sizeof p), w, h, PNG_COLOR_TYPE_RGB, 8, 1, rgb, (size_t)w * 3, NULL, 0, NULL, 0));
    expect_decode(T, "png adam7", p, w, h, rgb, 0);
    for (size_t i = 0; i < n; i++) {
        ref[3 * i] = pal[idx[i]].red;
        ref[3 * i + 1] = pal[idx[i]].green;
        ref[3 * i + 2] = pal[idx[i]].blue;
    }
    CHECK(T, write_png(path_in(T->dir, "pal.png", p, sizeof p), w, h, PNG_COLOR_TYPE_PALETTE, 8, 0, idx, (size_t)w, pal, 16, trans, 16));
    expect_decode(T, "png palette", p, w, h, ref, 0);
    for (size_t i = 0; i < 3 * n; i++) ref[i] = b16[2 * i]; /* 16 -> 8 keeps the high byte */
    CHECK(T, write_png(path_in(T->dir, "rgb16.png", p, sizeof p), w, h, PNG_COLOR_TYPE_RGB, 16, 0, b16, (size_t)w * 6, NULL, 0, NULL, 0));
    expect_decode(T, "png 16-bit", p, w, h, ref, 0);
    for (size_t i = 0; i < n; i++) memset(ref + 3 * i, g8[i], 3);
    CHECK(T, write_png(path_in(T->dir, "gray.png", p, sizeof p), w, h, PNG_COLOR_TYPE_GRAY, 8, 0, g8, (size_t)w, NULL, 0, NULL, 0));
    expect_decode(T, "png gray", p, w, h, ref, 0);
    for (size_t i = 0; i < n; i++) memset(ref + 3 * i, ((i % w) + (i / w)) % 3 == 0 ? 255 : 0, 3);
    CHECK(T, write_png(path_in(T->dir, "gray1.png", p, sizeof p), w, h, PNG_COLOR_TYPE_GRAY, 1, 0, g1, (size_t)(w + 7) / 8, NULL, 0, NULL, 0));
    expect_decode(T, "png 1-bit", p, w, h, ref, 0);
    CHECK(T, write_png(path_in(T->dir, "gray1i.png", p, sizeof p), w, h, PNG_COLOR_TYPE_GRAY, 1, 1, g1, (size_t)(w + 7) / 8, NULL, 0, NULL, 0));
    expect_decode(T, "png 1-bit i", p, w, h, ref, 0);
    free(rgb);
    free(ref);
    free(rgba);
    free(idx);
    free(g8);
    free(b16);
    free(g1);
}

/* Decodes path and checks it is rejected: an error code, a message naming
** the path (and `also`, when given) and an empty image. */
static void expect_bad(tctx *T, const char *label, const char *path, const char *also) {
    rn_image im = {7, 7, 7, (uint8_t *)&im};
    rn_error err = {RN_OK, ""};
    rn_status s = rn_image_decode_file(path, 0, &im, &err);
    CHECK(T, s == RN_ERR_FORMAT || s == RN_ERR_IO);
    CHECK(T, err.code == s);
    CHECK(T, strstr(err.msg, path) != NULL);
    if (also) CHECK(T, strstr(err.msg, also) != NULL);
    CHECK(T, im.px == NULL && im.w == 0 && im.h == 0);
    printf("  rejected %-16s (%d) %s\n", label, (int)s, err.msg);
}

/* Appends a PNG chunk with its CRC at b + *n. */
static void png_chunk(uint8_t *b, size_t *n, const char *type, const uint8_t *data, uint32_t len) {
    uint8_t *c = b + *n;
    c[0] = (uint8_t)(len >> 24), c[1] = (uint8_t)(len >> 16), c[2] = (uint8_t)(len >> 8), c[3] = (uint8_t)len;
    memcpy(c + 4, type, 4);
    if (len) memcpy(c + 8, data, len);
    uint32_t crc = (uint32_t)crc32(0, c + 4, 4 + len);
    c[8 + len] = (uint8_t)(crc >> 24), c[9 + len] = (uint8_t)(crc >> 16);
    c[10 + len] = (uint8_t)(crc >> 8), c[11 + len] = (uint8_t)crc;
    *n += 12 + len;
}

/* Broken and hostile files: each an error naming the file, never a crash. */
static void test_bad_images(tctx *T) {
    char p[512], q[512];
    size_t n;
    CHECK(T, write_raw(path_in(T->dir, "empty.jpg", p, sizeof p), "", 0));
    expect_bad(T, "empty file", p, NULL);
    CHECK(T, write_raw(path_in(T->dir, "text.jpg", p, sizeof p), "hello, world\n", 13));
    expect_bad(T, "text as .jpg", p, "not a JPEG or PNG");
    uint8_t *j = read_all(path_in(T->dir, "rgb.jpg", q, sizeof q), &n);
    CHECK(T, j && n > 200);
    if (j) {
        CHECK(T, write_raw(path_in(T->dir, "trunc.jpg", p, sizeof p), j, n / 2));
        expect_bad(T, "truncated jpeg", p, "Premature end");
        /* a SOF0 patched to declare 40000x40000 */
        for (size_t i = 0; i + 9 < n; i++)
            if (j[i] == 0xFF && j[i + 1] == 0xC0) {
                j[i + 5] = j[i + 7] = 40000 >> 8;
                j[i + 6] = j[i + 8] = 40000 & 255;
                break;
            }
        CHECK(T, write_raw(path_in(T->dir, "huge.jpg", p, sizeof p), j, n));
        expect_bad(T, "huge jpeg", p, "40000x40000");
    }
    free(j);
    uint8_t *g = read_all(path_in(T->dir, "rgb.png", q, sizeof q), &n);
    CHECK(T, g && n > 100);
    if (g) {
        CHECK(T, write_raw(path_in(T->dir, "trunc.png", p, sizeof p), g, n / 2));
        expect_bad(T, "truncated png", p, NULL);
    }
    free(g);
    /* a valid signature and IHDR declaring 100000 x 100000 RGB, then a tiny IDAT */
    uint8_t b[128] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
    uint8_t ihdr[13] = {0, 1, 0x86, 0xA0, 0, 1, 0x86, 0xA0, 8, 2, 0, 0, 0};
    uint8_t idat[2] = {0x78, 0x9C};
    n = 8;
    png_chunk(b, &n, "IHDR", ihdr, 13);
    png_chunk(b, &n, "IDAT", idat, 2);
    png_chunk(b, &n, "IEND", NULL, 0);
    CHECK(T, write_raw(path_in(T->dir, "huge.png", p, sizeof p), b, n));
    expect_bad(T, "huge png", p, "100000x100000");
    expect_bad(T, "missing file", path_in(T->dir, "no-such-file.png", p, sizeof p), NULL);
    /* memory decoding of junk names the given name */
    rn_image im;
    rn_error err = {RN_OK, ""};
    CHECK(T, rn_image_decode_mem(b, 3, "junk-name", 0, &im, &err) == RN_ERR_FORMAT);
    CHECK(T, strstr(err.msg, "junk-name") != NULL && im.px == NULL);
}

/* ---- IDX ---------------------------------------------------------------- */

/* Writes train-* (plain) and t10k-* (gzip) files into dir. */
static int write_idx_set(const char *dir, uint32_t ntrain, uint32_t ntest, const uint8_t *pix,
                         const uint8_t *lab) {
    char p[600];
    uint32_t d3[3] = {ntrain, 4, 3}, d1[1] = {ntrain};
    int ok = 1;
    snprintf(p, sizeof p, "%s/train-images-idx3-ubyte", dir);
    ok &= write_idx(p, 0, 0x803, d3, 3, pix, (size_t)ntrain * 12);
    snprintf(p, sizeof p, "%s/train-labels-idx1-ubyte", dir);
    ok &= write_idx(p, 0, 0x801, d1, 1, lab, ntrain);
    d3[0] = d1[0] = ntest;
    snprintf(p, sizeof p, "%s/t10k-images-idx3-ubyte.gz", dir);
    ok &= write_idx(p, 1, 0x803, d3, 3, pix, (size_t)ntest * 12);
    snprintf(p, sizeof p, "%s/t10k-labels-idx1-ubyte.gz", dir);
    ok &= write_idx(p, 1, 0x801, d1, 1, lab, ntest);
    return ok;
}

/* Opens "idx:dir" and checks it fails with a message naming `names`. */
static void expect_idx_bad(tctx *T, const char *label, const char *dir, const char *names,
                           const char *also) {
    char spec[600];
    rn_dataset tr, va;
    rn_error err = {RN_OK, ""};
    snprintf(spec, sizeof spec, "idx:%s", dir);
    rn_status s = rn_dataset_open(spec, NULL, &tr, &va, &err);
    CHECK(T, s == RN_ERR_FORMAT || s == RN_ERR_IO);
    CHECK(T, strstr(err.msg, names) != NULL);
    if (also) CHECK(T, strstr(err.msg, also) != NULL);
    CHECK(T, tr.n == 0 && tr.pixels == NULL && va.n == 0 && va.labels == NULL);
    printf("  rejected %-16s (%d) %s\n", label, (int)s, err.msg);
}

/* IDX round trip (plain and gzip) and the malformed variants. */
static void test_idx(tctx *T) {
    char d[512], spec[600], p[600];
    uint8_t pix[5 * 12], lab[5] = {0, 3, 1, 2, 3};
    for (int i = 0; i < 5 * 12; i++) pix[i] = (uint8_t)(i * 11 + 5);
    CHECK(T, write_idx_set(mkdir_in(T, "idx", d, sizeof d), 5, 3, pix, lab));
    snprintf(spec, sizeof spec, "idx:%s", d);
    rn_dataset tr, va;
    rn_error err = {RN_OK, ""};
    rn_status s = rn_dataset_open(spec, NULL, &tr, &va, &err);
    if (!CHECK(T, s == RN_OK)) printf("  %s\n", err.msg);
    if (s == RN_OK) {
        CHECK(T, tr.kind == RN_DS_MEMORY && tr.n == 5 && tr.h == 4 && tr.w == 3 && tr.c == 1);
        CHECK(T, va.n == 3 && va.h == 4 && va.w == 3 && va.c == 1);
        CHECK(T, tr.nclasses == 4 && va.nclasses == 4 && strcmp(tr.class_names[3], "3") == 0);
        CHECK(T, tr.labels[1] == 3 && tr.labels[4] == 3 && va.labels[2] == 1);
        CHECK(T, memcmp(tr.pixels, pix, sizeof pix) == 0 && memcmp(va.pixels, pix, 36) == 0);
        rn_image im;
        CHECK(T, rn_dataset_get(&tr, 2, 0, &im, &err) == RN_OK);
        CHECK(T, im.h == 4 && im.w == 3 && im.c == 1 && im.px && memcmp(im.px, pix + 24, 12) == 0);
        rn_image_free(&im);
        CHECK(T, rn_dataset_get(&tr, 5, 0, &im, &err) == RN_ERR_ARG && im.px == NULL);
    }
    rn_dataset_free(&tr);
    rn_dataset_free(&va);
    CHECK(T, tr.pixels == NULL && tr.n == 0);
    /* only the validation half: its labels stop at 3 but the classes are still 4 */
    CHECK(T, rn_dataset_open(spec, NULL, NULL, &va, &err) == RN_OK && va.n == 3 && va.nclasses == 4);
    rn_dataset_free(&va);
    /* a test label beyond the training labels */
    uint8_t lab9[5] = {0, 1, 9, 1, 0};
    snprintf(p, sizeof p, "%s/t10k-labels-idx1-ubyte.gz", d);
    uint32_t d3n[1] = {3};
    CHECK(T, write_idx(p, 1, 0x801, d3n, 1, lab9, 3));
    expect_idx_bad(T, "idx test label", d, d, "up to 9");

    /* wrong magic in the images file */
    uint32_t d3[3] = {5, 4, 3}, d1[1] = {5};
    CHECK(T, write_idx_set(mkdir_in(T, "idx_magic", d, sizeof d), 5, 3, pix, lab));
    snprintf(p, sizeof p, "%s/train-images-idx3-ubyte", d);
    CHECK(T, write_idx(p, 0, 0x804, d3, 3, pix, sizeof pix));
    expect_idx_bad(T, "idx magic", d, p, "magic");
    /* 5 images, 4 labels */
    CHECK(T, write_idx_set(mkdir_in(T, "idx_count", d, sizeof d), 5, 3, pix, lab));
    snprintf(p, sizeof p, "%s/train-labels-idx1-ubyte", d);
    d1[0] = 4;
    CHECK(T, write_idx(p, 0, 0x801, d1, 1, lab, 4));
    expect_idx_bad(T, "idx count", d, p, NULL);
    /* header says 5 images, 3 present (gzip) */
    CHECK(T, write_idx_set(mkdir_in(T, "idx_trunc", d, sizeof d), 5, 3, pix, lab));
    snprintf(p, sizeof p, "%s/t10k-images-idx3-ubyte.gz", d);
    CHECK(T, write_idx(p, 1, 0x803, d3, 3, pix, 36));
    expect_idx_bad(T, "idx truncated", d, p, "shorter than its header");
    /* header claims 2^31 images of 28x28, plain and gzip: must fail fast */
    for (int gz = 0; gz < 2; gz++) {
        CHECK(T, write_idx_set(mkdir_in(T, gz ? "idx_huge_gz" : "idx_huge", d, sizeof d), 5, 3, pix, lab));
        if (gz) {
            snprintf(p, sizeof p, "%s/train-images-idx3-ubyte", d);
            unlink(p);
        }
        snprintf(p, sizeof p, "%s/train-images-idx3-ubyte%s", d, gz ? ".gz" : "");
        uint32_t dh[3] = {0x80000000u, 28, 28};
        CHECK(T, write_idx(p, gz, 0x803, dh, 3, pix, sizeof pix));
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        expect_idx_bad(T, gz ? "idx 2^31 gz" : "idx 2^31", d, p, "shorter than its header");
        clock_gettime(CLOCK_MONOTONIC, &t1);
        CHECK(T, (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9 < 1.0);
    }
    /* a missing directory */
    expect_idx_bad(T, "idx no dir", path_in(T->dir, "no-such-dir", d, sizeof d), d, NULL);
}

/* ---- CIFAR -------------------------------------------------------------- */

/* The pixel value of sample i, channel ch, position p (y*32+x). */
static uint8_t cifar_px(size_t i, int ch, int p) { return (uint8_t)(i * 7 + ch * 50 + p * 3 + p / 32); }

/* Writes a batch of n records starting at global index i0 (planar pixels). */
static int write_cifar(const char *path, int hundred, size_t i0, size_t n) {
    size_t rec = hundred ? 3074 : 3073;
    uint8_t *b = malloc(rec * n);
    if (!b) return 0;
    for (size_t r = 0; r < n; r++) {
        uint8_t *q = b + r * rec;
        size_t i = i0 + r;
        if (hundred) {
            q[0] = (uint8_t)(i % 20);        /* coarse: must be ignored */
            q[1] = (uint8_t)((i * 37) % 100);
        } else {
            q[0] = (uint8_t)(i % 10);
        }
        for (int ch = 0; ch < 3; ch++)
            for (int p = 0; p < 1024; p++) q[rec - 3072 + ch * 1024 + p] = cifar_px(i, ch, p);
    }
    int ok = write_raw(path, b, rec * n);
    free(b);
    return ok;
}

/* Checks every pixel and label of a CIFAR dataset whose global indices
** start at i0: HWC order and the right label byte. */
static int cifar_ok(const rn_dataset *d, int hundred, size_t i0) {
    for (size_t s = 0; s < d->n; s++) {
        size_t i = i0 + s;
        if (d->labels[s] != (hundred ? (int)((i * 37) % 100) : (int)(i % 10))) return 0;
        for (int p = 0; p < 1024; p++)
            for (int ch = 0; ch < 3; ch++)
                if (d->pixels[s * 3072 + (size_t)p * 3 + ch] != cifar_px(i, ch, p)) return 0;
    }
    return 1;
}

/* CIFAR-10 (found via the parent directory, with a names file) and
** CIFAR-100 (given directly, numbered names), then a bad file size. */
static void test_cifar(tctx *T) {
    char d[512], p[600], spec[600];
    mkdir_in(T, "c10", d, sizeof d);
    mkdir_in(T, "c10/cifar-10-batches-bin", d, sizeof d);
    for (int b = 0; b < 5; b++) {
        snprintf(p, sizeof p, "%s/data_batch_%d.bin", d, b + 1);
        CHECK(T, write_cifar(p, 0, (size_t)b * 3, 3));
    }
    snprintf(p, sizeof p, "%s/test_batch.bin", d);
    CHECK(T, write_cifar(p, 0, 100, 4));
    snprintf(p, sizeof p, "%s/batches.meta.txt", d);
    const char *meta = "plane\ncar\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n";
    CHECK(T, write_raw(p, meta, strlen(meta)));
    snprintf(spec, sizeof spec, "cifar10:%s/c10", T->dir);
    rn_dataset tr, va;
    rn_error err = {RN_OK, ""};
    rn_status s = rn_dataset_open(spec, NULL, &tr, &va, &err);
    if (!CHECK(T, s == RN_OK)) printf("  %s\n", err.msg);
    if (s == RN_OK) {
        CHECK(T, tr.n == 15 && va.n == 4 && tr.h == 32 && tr.w == 32 && tr.c == 3);
        CHECK(T, tr.nclasses == 10 && strcmp(tr.class_names[1], "car") == 0 &&
                     strcmp(va.class_names[9], "truck") == 0);
        CHECK(T, cifar_ok(&tr, 0, 0) && cifar_ok(&va, 0, 100));
    }
    rn_dataset_free(&tr);
    rn_dataset_free(&va);
    /* without the names file: the standard names */
    unlink(p);
    CHECK(T, rn_dataset_open(spec, NULL, &tr, NULL, &err) == RN_OK);
    CHECK(T, tr.nclasses == 10 && tr.class_names && strcmp(tr.class_names[0], "airplane") == 0);
    rn_dataset_free(&tr);
    /* a test batch that is not a whole number of records */
    snprintf(p, sizeof p, "%s/test_batch.bin", d);
    uint8_t junk[3073 * 2 + 5] = {0};
    CHECK(T, write_raw(p, junk, sizeof junk));
    s = rn_dataset_open(spec, NULL, &tr, &va, &err);
    CHECK(T, s == RN_ERR_FORMAT && strstr(err.msg, p) != NULL && tr.n == 0 && va.n == 0);
    printf("  rejected %-16s (%d) %s\n", "cifar size", (int)s, err.msg);
    /* a label out of range */
    junk[3073] = 10;
    CHECK(T, write_raw(p, junk, 3073 * 2));
    s = rn_dataset_open(spec, NULL, NULL, &va, &err);
    CHECK(T, s == RN_ERR_FORMAT && strstr(err.msg, p) != NULL && strstr(err.msg, "label 10"));
    printf("  rejected %-16s (%d) %s\n", "cifar label", (int)s, err.msg);

    mkdir_in(T, "c100", d, sizeof d);
    snprintf(p, sizeof p, "%s/train.bin", d);
    CHECK(T, write_cifar(p, 1, 0, 7));
    snprintf(p, sizeof p, "%s/test.bin", d);
    CHECK(T, write_cifar(p, 1, 50, 2));
    snprintf(spec, sizeof spec, "cifar100:%s", d);
    s = rn_dataset_open(spec, NULL, &tr, &va, &err);
    if (!CHECK(T, s == RN_OK)) printf("  %s\n", err.msg);
    if (s == RN_OK) {
        CHECK(T, tr.n == 7 && va.n == 2 && tr.nclasses == 100 && strcmp(tr.class_names[99], "99") == 0);
        CHECK(T, cifar_ok(&tr, 1, 0) && cifar_ok(&va, 1, 50));
    }
    rn_dataset_free(&tr);
    rn_dataset_free(&va);
    /* cifar10 pointed at the CIFAR-100 directory: nothing it recognizes */
    snprintf(spec, sizeof spec, "cifar10:%s", d);
    s = rn_dataset_open(spec, NULL, &tr, &va, &err);
    CHECK(T, s != RN_OK && strstr(err.msg, d) != NULL);
}

/* ---- image folders ------------------------------------------------------ */

/* Writes a small valid PNG (w x h, flat colour v) at path. */
static int small_png(const char *path, int w, int h, uint8_t v) {
    uint8_t px[16 * 16 * 3];
    memset(px, v, sizeof px);
    return write_png(path, w, h, PNG_COLOR_TYPE_RGB, 8, 0, px, (size_t)w * 3, NULL, 0, NULL, 0);
}

/* Creates "<scratch>/<rel>" as a small PNG (or JPEG when jpeg is set). */
static int put_image(tctx *T, const char *rel, int jpeg) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", T->dir, rel);
    if (!jpeg) return small_png(p, 8, 6, 100);
    uint8_t px[16 * 16 * 3];
    memset(px, 100, sizeof px);
    return write_jpeg(p, px, 16, 12, 3, JCS_RGB, 0, NULL, 0);
}

/* Opens spec and checks it fails, naming `names` in the message. */
static void expect_folder_bad(tctx *T, const char *label, const char *spec, const char *labels,
                              const char *names) {
    rn_dataset tr, va;
    rn_error err = {RN_OK, ""};
    rn_status s = rn_dataset_open(spec, labels, &tr, &va, &err);
    CHECK(T, s != RN_OK && err.code == s);
    if (!CHECK(T, strstr(err.msg, names) != NULL)) printf("  expected \"%s\" in the message\n", names);
    CHECK(T, tr.n == 0 && tr.paths == NULL && va.n == 0 && va.paths == NULL);
    printf("  rejected %-16s (%d) %s\n", label, (int)s, err.msg);
}

/* Returns the path of sample i relative to the dataset root dir. */
static const char *rel_path(const rn_dataset *d, size_t i, const char *root) {
    size_t n = strlen(root);
    return strncmp(d->paths[i], root, n) == 0 ? d->paths[i] + n + 1 : d->paths[i];
}

/* A train/val folder with three classes in strcmp order (Bird < ant < cat),
** nested directories, a symlinked directory, a symlink loop, skipped files,
** non-UTF-8 and 250-byte file names, and a labels file. */
static void test_folder(tctx *T) {
    char d[512], p[1024], q[1024];
    static const char *const dirs[] = {"f",         "f/train",         "f/train/cat",    "f/train/ant",
                                       "f/train/Bird", "f/train/Bird/sub", "f/train/Bird/sub/deeper",
                                       "f/train/Bird/a-b", "f/extra",   "f/val",         "f/val/ant",
                                       "f/val/cat"};
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) mkdir_in(T, dirs[i], d, sizeof d);
    CHECK(T, put_image(T, "f/train/Bird/a.png", 0));
    CHECK(T, put_image(T, "f/train/Bird/sub/b.jpg", 1));
    CHECK(T, put_image(T, "f/train/Bird/sub/deeper/c.JPEG", 1));
    CHECK(T, put_image(T, "f/train/Bird/a-b/d.png", 0));
    CHECK(T, put_image(T, "f/extra/e.PNG", 0));
    CHECK(T, symlink("../../extra", path_in(T->dir, "f/train/Bird/zlink", p, sizeof p)) == 0);
    CHECK(T, symlink("..", path_in(T->dir, "f/train/Bird/sub/loop", p, sizeof p)) == 0);
    CHECK(T, put_image(T, "f/train/ant/2.png", 0));
    CHECK(T, put_image(T, "f/train/ant/1.jpg", 1));
    CHECK(T, write_raw(path_in(T->dir, "f/train/ant/notes.txt", p, sizeof p), "x", 1));
    CHECK(T, write_raw(path_in(T->dir, "f/train/ant/.DS_Store", p, sizeof p), "x", 1));
    CHECK(T, write_raw(path_in(T->dir, "f/train/README", p, sizeof p), "x", 1)); /* not a class */
    char longname[300];
    memset(longname, 'L', 250);
    strcpy(longname + 250, ".png");
    snprintf(q, sizeof q, "f/train/cat/%s", longname);
    CHECK(T, put_image(T, q, 0));
    CHECK(T, put_image(T, "f/train/cat/\xff\xfe-latin1-\xe9.png", 0));
    CHECK(T, put_image(T, "f/val/ant/v.png", 0));
    CHECK(T, put_image(T, "f/val/cat/w.jpg", 1));
    CHECK(T, write_raw(path_in(T->dir, "f/val/cat/w.txt", p, sizeof p), "x", 1));
    const char *labtext = "Bird birdie\n\n  ant   Formica rufa, wood ant  \r\nn999 unused\n";
    char labels[512];
    CHECK(T, write_raw(path_in(T->dir, "labels.txt", labels, sizeof labels), labtext, strlen(labtext)));

    char root[512];
    path_in(T->dir, "f", root, sizeof root);
    rn_dataset tr, va;
    rn_error err = {RN_OK, ""};
    rn_status s = rn_dataset_open(root, labels, &tr, &va, &err);
    if (!CHECK(T, s == RN_OK)) printf("  %s\n", err.msg);
    if (s == RN_OK) {
        static const char *const want[] = {"train/Bird/a.png", "train/Bird/a-b/d.png",
                                           "train/Bird/sub/b.jpg", "train/Bird/sub/deeper/c.JPEG",
                                           "train/Bird/zlink/e.PNG", "train/ant/1.jpg",
                                           "train/ant/2.png"};
        static const int wantl[] = {0, 0, 0, 0, 0, 1, 1, 2, 2};
        CHECK(T, tr.kind == RN_DS_FILES && tr.n == 9 && tr.nclasses == 3 && tr.c == 3);
        CHECK(T, tr.skipped == 2 && va.skipped == 1);
        CHECK(T, strcmp(tr.class_ids[0], "Bird") == 0 && strcmp(tr.class_ids[1], "ant") == 0 &&
                     strcmp(tr.class_ids[2], "cat") == 0);
        CHECK(T, strcmp(tr.class_names[0], "birdie") == 0 &&
                     strcmp(tr.class_names[1], "Formica rufa, wood ant") == 0 &&
                     strcmp(tr.class_names[2], "cat") == 0);
        for (size_t i = 0; i < 7 && i < tr.n; i++)
            if (!CHECK(T, strcmp(rel_path(&tr, i, root), want[i]) == 0))
                printf("  sample %zu is %s, expected %s\n", i, rel_path(&tr, i, root), want[i]);
        for (size_t i = 0; i < 9 && i < tr.n; i++) CHECK(T, tr.labels[i] == wantl[i]);
        /* cat: the 250-byte name (0x4C) sorts before the 0xFF name */
        CHECK(T, tr.n == 9 && strstr(tr.paths[7], longname) && strstr(tr.paths[8], "\xff\xfe-latin1"));
        CHECK(T, va.n == 2 && va.nclasses == 3 && va.labels[0] == 1 && va.labels[1] == 2);
        CHECK(T, va.class_names && strcmp(va.class_names[1], "Formica rufa, wood ant") == 0);
        rn_image im;
        CHECK(T, tr.n == 9 && rn_dataset_get(&tr, 3, 0, &im, &err) == RN_OK && im.w == 16 && im.h == 12 && im.c == 3);
        rn_image_free(&im);
        CHECK(T, tr.n == 9 && rn_dataset_get(&tr, 8, 0, &im, &err) == RN_OK && im.w == 8 && im.h == 6);
        rn_image_free(&im);
    }
    rn_dataset_free(&tr);
    rn_dataset_free(&va);
    /* valid/ instead of val/, training half only */
    CHECK(T, rename(path_in(T->dir, "f/val", p, sizeof p), path_in(T->dir, "f/valid", q, sizeof q)) == 0);
    s = rn_dataset_open(root, NULL, &tr, &va, &err);
    CHECK(T, s == RN_OK && va.n == 2 && strcmp(va.class_names[1], "ant") == 0 && strstr(va.source, "valid"));
    rn_dataset_free(&tr);
    rn_dataset_free(&va);

    /* errors */
    expect_folder_bad(T, "folder missing", path_in(T->dir, "nope", p, sizeof p), NULL, p);
    char e1[512];
    mkdir_in(T, "e1", e1, sizeof e1);
    expect_folder_bad(T, "no train/", e1, NULL, e1);
    mkdir_in(T, "e1/val", d, sizeof d);
    mkdir_in(T, "e1/val/a", d, sizeof d);
    CHECK(T, put_image(T, "e1/val/a/y.png", 0));
    mkdir_in(T, "e1/train", d, sizeof d);
    expect_folder_bad(T, "no classes", e1, NULL, d);
    mkdir_in(T, "e1/train/a", d, sizeof d);
    CHECK(T, write_raw(path_in(T->dir, "e1/train/a/x.txt", p, sizeof p), "x", 1));
    expect_folder_bad(T, "empty class", e1, NULL, d);
    CHECK(T, put_image(T, "e1/train/a/x.png", 0));
    CHECK(T, rn_dataset_open(e1, NULL, &tr, &va, &err) == RN_OK && tr.n == 1 && va.n == 1);
    rn_dataset_free(&tr);
    rn_dataset_free(&va);
    mkdir_in(T, "e1/val/zzz", d, sizeof d);
    CHECK(T, put_image(T, "e1/val/zzz/y.png", 0));
    expect_folder_bad(T, "val not in train", e1, NULL, d);
    CHECK(T, write_raw(path_in(T->dir, "bad-labels.txt", labels, sizeof labels), "n01 tench\nbadline\n", 18));
    snprintf(q, sizeof q, "%s:2", labels);
    expect_folder_bad(T, "labels line", root, labels, q);
    expect_folder_bad(T, "labels for idx", "idx:/nonexistent", labels, "labels file");
}

/* Debian's Fashion-MNIST, if installed. */
static void test_fashion(tctx *T) {
    struct stat st;
    if (stat("/usr/share/datasets/fashion-mnist", &st) != 0) {
        printf("  fashion-mnist not installed; skipped\n");
        return;
    }
    rn_dataset tr, va;
    rn_error err = {RN_OK, ""};
    rn_status s = rn_dataset_open("fashion-mnist", NULL, &tr, &va, &err);
    if (!CHECK(T, s == RN_OK)) printf("  %s\n", err.msg);
    if (s == RN_OK) {
        CHECK(T, tr.n == 60000 && va.n == 10000 && tr.h == 28 && tr.w == 28 && tr.c == 1);
        CHECK(T, tr.nclasses == 10 && va.nclasses == 10);
        CHECK(T, tr.labels[0] == 9 && strcmp(tr.class_names[tr.labels[0]], "Ankle boot") == 0);
        CHECK(T, strcmp(va.class_names[0], "T-shirt/top") == 0);
    }
    rn_dataset_free(&tr);
    rn_dataset_free(&va);
}

/* Runs every test in a fresh scratch directory, removed at the end. */
int main(void) {
    tctx T = {0, 0, "/tmp/rn_test_data_XXXXXX"};
    if (!mkdtemp(T.dir)) {
        perror("mkdtemp");
        return 1;
    }
    printf("decoding\n");
    test_jpeg(&T);
    test_orientation(&T);
    test_dct_scaling(&T);
    test_png(&T);
    test_bad_images(&T);
    printf("idx\n");
    test_idx(&T);
    printf("cifar\n");
    test_cifar(&T);
    printf("image folders\n");
    test_folder(&T);
    printf("fashion-mnist\n");
    test_fashion(&T);
    rm_tree(T.dir);
    printf("%d passed, %d failed\n", T.pass, T.fail);
    return T.fail ? 1 : 0;
}
