/*
** Image decoding: JPEG (libjpeg-turbo) and PNG (libpng) into 3-channel RGB.
**
** Both decoders read from memory, so decoding a file is "read it whole, then
** decode the buffer". The format is taken from the first bytes, never from
** the name (ImageNet has PNGs called .JPEG). Both libraries report errors by
** longjmp; their handlers here copy the message and never print. Declared
** sizes are checked before anything is allocated for the pixels, so a
** 12-byte header claiming 100000 x 100000 pixels costs nothing.
*/
#include "data/data.h"

#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

#include "core/error.h"

#define MAX_SIDE 32768                  /* largest width or height accepted */
#define MAX_PIXELS ((size_t)1 << 28)    /* largest w * h accepted */
#define MAX_FILE ((long long)1 << 30)   /* largest file read, 1 GiB */

/* Releases an image's pixels and empties it (safe on an empty image). */
void rn_image_free(rn_image *im) {
    if (!im) return;
    free(im->px);
    im->px = NULL;
    im->h = im->w = im->c = 0;
}

/* Checks a declared size against the limits, so a hostile header fails
** before any allocation; the message names the file and the size. */
static rn_status check_size(const char *name, unsigned long w, unsigned long h, rn_error *err) {
    if (w == 0 || h == 0)
        return rn_fail(err, RN_ERR_FORMAT, "%s: image declares an empty size %lux%lu", name, w, h);
    if (w > MAX_SIDE || h > MAX_SIDE || (size_t)w * (size_t)h > MAX_PIXELS)
        return rn_fail(err, RN_ERR_FORMAT,
                       "%s: image declares %lux%lu pixels, more than the limit "
                       "(%d per side, %zu in all)",
                       name, w, h, MAX_SIDE, MAX_PIXELS);
    return RN_OK;
}

/* ---- EXIF orientation --------------------------------------------------- */

/* Reads a 16-bit value in the TIFF block's byte order. */
static unsigned rd16(const uint8_t *p, int big) {
    return big ? (unsigned)(p[0] << 8 | p[1]) : (unsigned)(p[1] << 8 | p[0]);
}

/* Reads a 32-bit value in the TIFF block's byte order. */
static uint32_t rd32(const uint8_t *p, int big) {
    return big ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]
               : (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

/* Returns the orientation (1..8) from one APP1 payload, or 1 when it is not
** EXIF or has no valid orientation tag. Every offset is bounds-checked:
** the payload comes from the file. */
static int exif_orientation(const uint8_t *d, size_t n) {
    if (n < 6 + 8 || memcmp(d, "Exif\0\0", 6) != 0) return 1;
    const uint8_t *t = d + 6; /* TIFF header: byte order, 42, IFD0 offset */
    size_t tn = n - 6;
    int big;
    if (t[0] == 'I' && t[1] == 'I') big = 0;
    else if (t[0] == 'M' && t[1] == 'M') big = 1;
    else return 1;
    if (rd16(t + 2, big) != 42) return 1;
    uint32_t ifd = rd32(t + 4, big);
    if (ifd > tn || tn - ifd < 2) return 1;
    unsigned count = rd16(t + ifd, big);
    for (unsigned i = 0; i < count; i++) {
        size_t e = (size_t)ifd + 2 + (size_t)i * 12;
        if (e > tn || tn - e < 12) return 1;
        if (rd16(t + e, big) != 0x0112) continue;
        unsigned type = rd16(t + e + 2, big);
        unsigned v = type == 3 ? rd16(t + e + 8, big) : type == 4 ? (unsigned)rd32(t + e + 8, big) : 0;
        return v >= 1 && v <= 8 ? (int)v : 1;
    }
    return 1;
}

/* Finds the EXIF orientation among the markers libjpeg saved. */
static int jpeg_orientation(j_decompress_ptr ci) {
    for (jpeg_saved_marker_ptr m = ci->marker_list; m; m = m->next)
        if (m->marker == JPEG_APP0 + 1) {
            int o = exif_orientation(m->data, m->data_length);
            if (o != 1) return o;
        }
    return 1;
}

/* Maps output pixel (oy, ox) to its source pixel for EXIF orientation o, on
** a source of h x w. 5..8 swap the output's sides. */
static void orient_src(int o, int h, int w, int oy, int ox, int *sy, int *sx) {
    switch (o) {
    case 2: *sy = oy; *sx = w - 1 - ox; break;             /* mirror horizontal */
    case 3: *sy = h - 1 - oy; *sx = w - 1 - ox; break;     /* rotate 180 */
    case 4: *sy = h - 1 - oy; *sx = ox; break;             /* mirror vertical */
    case 5: *sy = ox; *sx = oy; break;                     /* transpose */
    case 6: *sy = h - 1 - ox; *sx = oy; break;             /* rotate 90 clockwise */
    case 7: *sy = h - 1 - ox; *sx = w - 1 - oy; break;     /* transverse */
    case 8: *sy = ox; *sx = w - 1 - oy; break;             /* rotate 90 counter-clockwise */
    default: *sy = oy; *sx = ox; break;
    }
}

/* Applies EXIF orientation o to a 3-channel image in place (by copy).
** im: (h,w,3) -> (h,w,3) or (w,h,3). */
static rn_status apply_orientation(rn_image *im, int o, const char *name, rn_error *err) {
    if (o <= 1 || o > 8) return RN_OK;
    int swap = o >= 5;
    int oh = swap ? im->w : im->h, ow = swap ? im->h : im->w;
    uint8_t *px = malloc((size_t)oh * ow * 3);
    if (!px) return rn_fail(err, RN_ERR_NOMEM, "%s: out of memory rotating the image", name);
    for (int oy = 0; oy < oh; oy++)
        for (int ox = 0; ox < ow; ox++) {
            int sy, sx;
            orient_src(o, im->h, im->w, oy, ox, &sy, &sx);
            memcpy(px + ((size_t)oy * ow + ox) * 3, im->px + ((size_t)sy * im->w + sx) * 3, 3);
        }
    free(im->px);
    im->px = px;
    im->h = oh;
    im->w = ow;
    return RN_OK;
}

/* ---- JPEG --------------------------------------------------------------- */

/* libjpeg's error manager plus where to jump and the message to report. */
typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
} jerr_mgr;

/* Fatal error: keep libjpeg's message and jump back to the decoder. */
static void jerr_exit(j_common_ptr ci) {
    jerr_mgr *e = (jerr_mgr *)ci->err;
    e->pub.format_message(ci, e->msg);
    longjmp(e->jb, 1);
}

/* Warnings and trace messages: never printed. A premature end of data is
** treated as an error (a truncated file would otherwise decode as grey). */
static void jerr_emit(j_common_ptr ci, int level) {
    jerr_mgr *e = (jerr_mgr *)ci->err;
    if (level < 0 && e->pub.msg_code == JWRN_JPEG_EOF) jerr_exit(ci);
    if (level < 0) e->pub.num_warnings++;
}

/* Never prints (libjpeg's default writes to stderr). */
static void jerr_output(j_common_ptr ci) { (void)ci; }

/* Picks the DCT scale n/8 (n in 1..8): the smallest whose scaled shorter
** side, rounded up as libjpeg does, is still >= min_side. */
static unsigned jpeg_scale(unsigned w, unsigned h, int min_side) {
    unsigned s = w < h ? w : h;
    if (min_side <= 0) return 8;
    for (unsigned n = 1; n < 8; n++)
        if ((s * n + 7) / 8 >= (unsigned)min_side) return n;
    return 8;
}

/* Converts one CMYK row to RGB. Adobe files (what Photoshop and libjpeg
** write) store inverted inks, so R = C*K/255 on the stored values; others
** store plain inks, R = (255-C)(255-K)/255. row: (w,4) -> out: (w,3) */
static void cmyk_row(const uint8_t *row, int w, int inverted, uint8_t *out) {
    for (int x = 0; x < w; x++) {
        unsigned c = row[4 * x], m = row[4 * x + 1], y = row[4 * x + 2], k = row[4 * x + 3];
        if (!inverted) c = 255 - c, m = 255 - m, y = 255 - y, k = 255 - k;
        out[3 * x] = (uint8_t)((c * k + 127) / 255);
        out[3 * x + 1] = (uint8_t)((m * k + 127) / 255);
        out[3 * x + 2] = (uint8_t)((y * k + 127) / 255);
    }
}

/* Decodes a JPEG held in memory into RGB, at a DCT scale chosen for
** min_side, then applies its EXIF orientation. */
static rn_status decode_jpeg(const uint8_t *buf, size_t len, const char *name, int min_side,
                             rn_image *out, rn_error *err) {
    struct jpeg_decompress_struct ci;
    jerr_mgr je;
    uint8_t *volatile px = NULL;
    uint8_t *volatile cmyk = NULL;
    ci.err = jpeg_std_error(&je.pub);
    je.pub.error_exit = jerr_exit;
    je.pub.emit_message = jerr_emit;
    je.pub.output_message = jerr_output;
    je.msg[0] = 0;
    if (setjmp(je.jb)) {
        jpeg_destroy_decompress(&ci);
        free(px);
        free(cmyk);
        return rn_fail(err, RN_ERR_FORMAT, "%s: %s", name, je.msg);
    }
    jpeg_create_decompress(&ci);
    jpeg_mem_src(&ci, buf, (unsigned long)len);
    jpeg_save_markers(&ci, JPEG_APP0 + 1, 0xFFFF);
    jpeg_read_header(&ci, TRUE);
    if (check_size(name, ci.image_width, ci.image_height, err) != RN_OK) {
        jpeg_destroy_decompress(&ci);
        return RN_ERR_FORMAT;
    }
    int orient = jpeg_orientation(&ci);
    int is_cmyk = ci.jpeg_color_space == JCS_CMYK || ci.jpeg_color_space == JCS_YCCK;
    ci.out_color_space = is_cmyk ? JCS_CMYK : JCS_RGB;
    ci.scale_num = jpeg_scale(ci.image_width, ci.image_height, min_side);
    ci.scale_denom = 8;
    jpeg_start_decompress(&ci);
    int w = (int)ci.output_width, h = (int)ci.output_height;
    if (ci.output_components != (is_cmyk ? 4 : 3)) {
        jpeg_destroy_decompress(&ci);
        return rn_fail(err, RN_ERR_FORMAT, "%s: unexpected JPEG output with %d components", name,
                       ci.output_components);
    }
    px = malloc((size_t)w * h * 3);
    if (is_cmyk) cmyk = malloc((size_t)w * 4);
    if (!px || (is_cmyk && !cmyk)) {
        jpeg_destroy_decompress(&ci);
        free(px);
        free(cmyk);
        return rn_fail(err, RN_ERR_NOMEM, "%s: out of memory for %dx%d pixels", name, w, h);
    }
    while (ci.output_scanline < ci.output_height) {
        uint8_t *dst = px + (size_t)ci.output_scanline * w * 3;
        JSAMPROW row = is_cmyk ? cmyk : dst;
        if (jpeg_read_scanlines(&ci, &row, 1) != 1) break;
        if (is_cmyk) cmyk_row(cmyk, w, ci.saw_Adobe_marker, dst);
    }
    jpeg_finish_decompress(&ci);
    jpeg_destroy_decompress(&ci);
    free(cmyk);
    out->px = px;
    out->h = h;
    out->w = w;
    out->c = 3;
    if (apply_orientation(out, orient, name, err) != RN_OK) {
        rn_image_free(out);
        return RN_ERR_NOMEM;
    }
    return RN_OK;
}

/* ---- PNG ---------------------------------------------------------------- */

/* The memory source libpng reads from, and the error text it left. */
typedef struct {
    const uint8_t *buf;
    size_t len, pos;
    char msg[256];
} png_src;

/* libpng read callback: copies the next n bytes, or fails at end of data. */
static void png_read_mem(png_structp png, png_bytep dst, png_size_t n) {
    png_src *s = png_get_io_ptr(png);
    if (n > s->len - s->pos) png_error(png, "file is truncated");
    memcpy(dst, s->buf + s->pos, n);
    s->pos += n;
}

/* libpng fatal error: keep the message and jump back to the decoder. */
static void png_err_fn(png_structp png, png_const_charp msg) {
    png_src *s = png_get_error_ptr(png);
    snprintf(s->msg, sizeof s->msg, "%s", msg);
    png_longjmp(png, 1);
}

/* libpng warnings are not errors and are never printed. */
static void png_warn_fn(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg;
}

/* Decodes a PNG held in memory into 8-bit RGB: palette and low bit depths
** expanded, gray replicated, 16-bit cut to 8, alpha and tRNS dropped. */
static rn_status decode_png(const uint8_t *buf, size_t len, const char *name, rn_image *out,
                            rn_error *err) {
    png_src src = {buf, len, 0, ""};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, png_err_fn, png_warn_fn);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    uint8_t *volatile px = NULL;
    png_bytep *volatile rows = NULL;
    if (!info) {
        png_destroy_read_struct(png ? &png : NULL, NULL, NULL);
        return rn_fail(err, RN_ERR_NOMEM, "%s: out of memory creating a PNG reader", name);
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        free(px);
        free(rows);
        return rn_fail(err, RN_ERR_FORMAT, "%s: %s", name, src.msg);
    }
    png_set_read_fn(png, &src, png_read_mem);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    if (check_size(name, w, h, err) != RN_OK) {
        png_destroy_read_struct(&png, &info, NULL);
        return RN_ERR_FORMAT;
    }
    png_set_palette_to_rgb(png);
    png_set_expand_gray_1_2_4_to_8(png);
    png_set_strip_16(png);
    png_set_strip_alpha(png);
    png_set_gray_to_rgb(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_rowbytes(png, info) != (size_t)w * 3) {
        png_destroy_read_struct(&png, &info, NULL);
        return rn_fail(err, RN_ERR_FORMAT, "%s: PNG did not convert to 8-bit RGB", name);
    }
    px = malloc((size_t)w * h * 3);
    rows = malloc((size_t)h * sizeof *rows);
    if (!px || !rows) {
        png_destroy_read_struct(&png, &info, NULL);
        free(px);
        free(rows);
        return rn_fail(err, RN_ERR_NOMEM, "%s: out of memory for %ux%u pixels", name,
                       (unsigned)w, (unsigned)h);
    }
    for (png_uint_32 y = 0; y < h; y++) rows[y] = px + (size_t)y * w * 3;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    free(rows);
    out->px = px;
    out->h = (int)h;
    out->w = (int)w;
    out->c = 3;
    return RN_OK;
}

/* ---- entry points ------------------------------------------------------- */

/* Decodes a JPEG or PNG held in memory, recognized by its first bytes.
** `name` is only used in messages. */
rn_status rn_image_decode_mem(const uint8_t *buf, size_t len, const char *name, int min_side,
                              rn_image *out, rn_error *err) {
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
    out->px = NULL;
    out->h = out->w = out->c = 0;
    if (!name) name = "(memory)";
    if (!buf || len == 0) return rn_fail(err, RN_ERR_FORMAT, "%s: empty file", name);
    if (len >= 3 && buf[0] == 0xFF && buf[1] == 0xD8 && buf[2] == 0xFF)
        return decode_jpeg(buf, len, name, min_side, out, err);
    if (len >= 8 && memcmp(buf, png_sig, 8) == 0) return decode_png(buf, len, name, out, err);
    return rn_fail(err, RN_ERR_FORMAT, "%s: not a JPEG or PNG file", name);
}

/* Reads a whole file (at most 1 GiB) and decodes it. */
rn_status rn_image_decode_file(const char *path, int min_side, rn_image *out, rn_error *err) {
    out->px = NULL;
    out->h = out->w = out->c = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) return rn_fail(err, RN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(fp);
        return rn_fail(err, RN_ERR_IO, "%s: not a regular file", path);
    }
    if ((long long)st.st_size > MAX_FILE) {
        fclose(fp);
        return rn_fail(err, RN_ERR_FORMAT, "%s: file is %lld bytes, more than the 1 GiB limit",
                       path, (long long)st.st_size);
    }
    size_t n = (size_t)st.st_size;
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) {
        fclose(fp);
        return rn_fail(err, RN_ERR_NOMEM, "%s: out of memory reading %zu bytes", path, n);
    }
    size_t got = fread(buf, 1, n, fp);
    int rerr = ferror(fp);
    fclose(fp);
    if (rerr || got != n) {
        free(buf);
        return rn_fail(err, RN_ERR_IO, "%s: read error", path);
    }
    rn_status s = rn_image_decode_mem(buf, n, path, min_side, out, err);
    free(buf);
    return s;
}
