/*
 * Image models: the "image" object of config.json, decoding (libjpeg-turbo, libpng), EXIF
 * orientation (libexif) and preprocessing into the model's input tensor. docs/image-models.md is
 * the reference.
 *
 * Decoding never exits the process and never trusts the file:
 * - the pixel count declared by the header is checked against the cap before any pixel is
 *   decoded (a 100000x100000 PNG of a few hundred bytes is refused, not inflated);
 * - libjpeg's and libpng's fatal errors longjmp back to the decoder, which frees what it
 *   allocated; all state that changes after setjmp lives in a struct reached through a pointer,
 *   so nothing the error path reads is an indeterminate register copy;
 * - a JPEG that ends early ("Premature end of JPEG file", a libjpeg warning that would otherwise
 *   decode grey padding) is an error; other libjpeg warnings (extraneous bytes between markers)
 *   are tolerated, as browsers do. More than MAX_JPEG_SCANS progressive scans is an error too
 *   (a small file with thousands of scans costs seconds of CPU).
 * - PNG chunks other than the image's may not exceed MAX_PNG_CHUNK bytes.
 *
 * Colour: JPEG decodes straight to grey or RGB as the model wants (libjpeg converts); CMYK and
 * YCCK JPEGs (Photoshop's, usually with inverted values as its Adobe marker says) are converted
 * to RGB here with the naive formula R = (255 - C)(255 - K)/255 (no colour profile). PNG: 16-bit
 * samples are scaled to 8 bits (rounded), palettes and low bit depths expanded, tRNS made alpha,
 * and alpha composited on white (a transparent background reads as white paper, as most viewers
 * show it). Grey from RGB is ITU-R BT.601 luma (0.299 R + 0.587 G + 0.114 B, what libjpeg and
 * PIL's "L" use); grey to RGB repeats the value. No gamma or ICC handling.
 *
 * Orientation: EXIF tag 0x0112 from a JPEG's APP1 "Exif" segment or a PNG's eXIf chunk; all
 * eight values are applied (mirrors and rotations) before resizing.
 *
 * Resize: the short side becomes resize_short_side (the long side scaled alike, truncated, as
 * torchvision's Resize does), then the centre crop [crop_h, crop_w] (offsets rounded). Only the
 * cropped pixels are computed, with bilinear interpolation on pixel centres (align_corners =
 * false, the convention of PIL and PyTorch). Shrinking by 2x or more first averages k x k blocks
 * (k = the whole factor), an area filter that keeps small details from aliasing; big JPEGs get
 * the same from libjpeg's DCT scaling (1/2, 1/4, 1/8) at no cost.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>
#include <libexif/exif-data.h>
#include <png.h>

#include "server/jsonw.h"
#include "server/server.h"

#define MAX_JPEG_SCANS 500
#define MAX_PNG_CHUNK (8u << 20)
#define MAX_DIM 1000000 /* width or height, any format */

/* The reasons of vigil_image_rejected_total (here rather than in api_image.c so that store.c,
 * which binds them, does not pull the HTTP layer into the unit tests' link). */
const char *const vg_image_reject_names[VG_N_IMAGE_REJECTS] = {
    "bad_request", "unsupported_format", "corrupt",       "too_many_pixels", "url_disabled",
    "url_invalid", "url_forbidden",      "url_too_large", "url_timeout",     "url_failed",
};

/* ---- config.json's "image" ------------------------------------------------------------------- */

static int spec_fail(char *msg, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int spec_fail(char *msg, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, size, fmt, ap);
    va_end(ap);
    return -1;
}

static int whole(const cJSON *v, int lo, int hi, int *out)
{
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < lo ||
        v->valuedouble > hi)
        return -1;
    *out = (int)v->valuedouble;
    return 0;
}

static int three_numbers(const cJSON *a, int n, float *out, int positive)
{
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != n)
        return -1;
    int i = 0;
    for (const cJSON *it = a->child; it; it = it->next, i++) {
        if (!cJSON_IsNumber(it) || !isfinite((float)it->valuedouble))
            return -1;
        out[i] = (float)it->valuedouble;
        if (positive && !(out[i] > 0))
            return -1;
    }
    return 0;
}

int vg_image_spec_parse(const cJSON *image, const cJSON *top_k, struct vg_image_spec *s, char *msg,
                        size_t size)
{
    memset(s, 0, sizeof *s);
    if (!cJSON_IsObject(image))
        return spec_fail(msg, size,
                         "an image_classification model needs an 'image' object (layout, channels, "
                         "resize_short_side, crop, normalize, dtype...), got %s",
                         vg_json_kind(image));
    static const char *const known[] = {"layout", "channels",  "color_order", "resize_short_side",
                                        "crop",   "normalize", "dtype",       "output",
                                        NULL};
    for (const cJSON *it = image->child; it; it = it->next) {
        int ok = 0;
        for (int k = 0; known[k] && !ok; k++)
            ok = !strcmp(it->string, known[k]);
        if (!ok)
            return spec_fail(msg, size,
                             "unknown key 'image.%s' (known: layout, channels, "
                             "color_order, resize_short_side, crop, normalize, dtype, output)",
                             it->string);
    }
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(image, "layout");
    if (cJSON_IsString(v) && !strcmp(v->valuestring, "NCHW"))
        s->layout = VG_IMAGE_NCHW;
    else if (cJSON_IsString(v) && !strcmp(v->valuestring, "NHWC"))
        s->layout = VG_IMAGE_NHWC;
    else
        return spec_fail(msg, size, "'image.layout' must be \"NCHW\" or \"NHWC\"");

    v = cJSON_GetObjectItemCaseSensitive(image, "channels");
    if (whole(v, 1, 3, &s->channels) || s->channels == 2)
        return spec_fail(msg, size, "'image.channels' must be 1 (grey) or 3 (colour)");

    v = cJSON_GetObjectItemCaseSensitive(image, "color_order");
    if (!v || (cJSON_IsString(v) && !strcmp(v->valuestring, "RGB")))
        s->bgr = 0;
    else if (cJSON_IsString(v) && !strcmp(v->valuestring, "BGR"))
        s->bgr = 1;
    else
        return spec_fail(msg, size, "'image.color_order' must be \"RGB\" or \"BGR\"");
    if (s->bgr && s->channels != 3)
        return spec_fail(msg, size, "'image.color_order' \"BGR\" needs 3 channels");

    v = cJSON_GetObjectItemCaseSensitive(image, "crop");
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 2 ||
        whole(cJSON_GetArrayItem(v, 0), 1, 16384, &s->crop_h) ||
        whole(cJSON_GetArrayItem(v, 1), 1, 16384, &s->crop_w))
        return spec_fail(msg, size,
                         "'image.crop' must be [height, width], whole numbers from 1 to 16384");
    v = cJSON_GetObjectItemCaseSensitive(image, "resize_short_side");
    if (!v) {
        s->resize_short_side = s->crop_h > s->crop_w ? s->crop_h : s->crop_w;
    } else if (whole(v, 1, 16384, &s->resize_short_side)) {
        return spec_fail(msg, size,
                         "'image.resize_short_side' must be a whole number from 1 to 16384");
    }
    if (s->crop_h > s->resize_short_side || s->crop_w > s->resize_short_side)
        return spec_fail(msg, size,
                         "'image.crop' [%d, %d] is larger than 'image.resize_short_side' %d: the "
                         "crop must fit in the resized image",
                         s->crop_h, s->crop_w, s->resize_short_side);

    v = cJSON_GetObjectItemCaseSensitive(image, "dtype");
    if (!v || (cJSON_IsString(v) && !strcmp(v->valuestring, "float32")))
        s->dtype = VG_DT_FLOAT;
    else if (cJSON_IsString(v) && !strcmp(v->valuestring, "uint8"))
        s->dtype = VG_DT_UINT8;
    else if (cJSON_IsString(v) && !strcmp(v->valuestring, "int8"))
        s->dtype = VG_DT_INT8;
    else
        return spec_fail(msg, size, "'image.dtype' must be \"float32\", \"uint8\" or \"int8\"");

    v = cJSON_GetObjectItemCaseSensitive(image, "normalize");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(v, "type");
    if (!v) {
        s->norm = VG_IMAGE_NORM_NONE;
    } else if (!cJSON_IsObject(v) || !cJSON_IsString(type)) {
        return spec_fail(msg, size,
                         "'image.normalize' must be an object with a \"type\": \"mean_std\", "
                         "\"offset_scale\" or \"none\"");
    } else if (!strcmp(type->valuestring, "none")) {
        s->norm = VG_IMAGE_NORM_NONE;
    } else if (!strcmp(type->valuestring, "mean_std")) {
        s->norm = VG_IMAGE_NORM_MEAN_STD;
        if (three_numbers(cJSON_GetObjectItemCaseSensitive(v, "mean"), s->channels, s->mean, 0) ||
            three_numbers(cJSON_GetObjectItemCaseSensitive(v, "std"), s->channels, s->std, 1))
            return spec_fail(msg, size,
                             "'image.normalize' mean_std needs \"mean\" and \"std\": %d number%s "
                             "each (one per channel, std > 0)",
                             s->channels, s->channels == 1 ? "" : "s");
    } else if (!strcmp(type->valuestring, "offset_scale")) {
        s->norm = VG_IMAGE_NORM_OFFSET_SCALE;
        const cJSON *o = cJSON_GetObjectItemCaseSensitive(v, "offset");
        const cJSON *sc = cJSON_GetObjectItemCaseSensitive(v, "scale");
        if (!cJSON_IsNumber(o) || !cJSON_IsNumber(sc) || !isfinite((float)o->valuedouble) ||
            !isfinite((float)sc->valuedouble) || sc->valuedouble == 0)
            return spec_fail(msg, size,
                             "'image.normalize' offset_scale needs numbers \"offset\" and "
                             "\"scale\" (scale not 0)");
        s->offset = (float)o->valuedouble;
        s->scale = (float)sc->valuedouble;
    } else {
        return spec_fail(msg, size,
                         "'image.normalize.type' must be \"mean_std\", \"offset_scale\" or "
                         "\"none\"");
    }
    if (s->dtype != VG_DT_FLOAT && s->norm != VG_IMAGE_NORM_NONE)
        return spec_fail(msg, size,
                         "'image.normalize' must be none for dtype %s: the model takes the "
                         "pixel values themselves",
                         s->dtype == VG_DT_UINT8 ? "uint8" : "int8");

    v = cJSON_GetObjectItemCaseSensitive(image, "output");
    if (!v || (cJSON_IsString(v) && !strcmp(v->valuestring, "logits")))
        s->softmax = 1;
    else if (cJSON_IsString(v) && !strcmp(v->valuestring, "probabilities"))
        s->softmax = 0;
    else
        return spec_fail(msg, size, "'image.output' must be \"logits\" or \"probabilities\"");

    s->top_k = 5;
    if (top_k && whole(top_k, 1, 1000000, &s->top_k))
        return spec_fail(msg, size, "'top_k' must be a whole number >= 1");
    return 0;
}

/* ---- Signatures and EXIF --------------------------------------------------------------------- */

static const unsigned char png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

int vg_image_sniff(const void *data, size_t len)
{
    const unsigned char *p = data;
    if (len >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff)
        return 1;
    return len >= 8 && !memcmp(p, png_sig, 8);
}

/* Orientation from EXIF data that starts with "Exif\0\0"; 1 when absent or out of range. */
static int exif_orientation(const unsigned char *data, size_t len)
{
    if (len < 14 || len > 0xffff * 4u)
        return 1;
    ExifData *ed = exif_data_new();
    if (!ed)
        return 1;
    exif_data_unset_option(ed, EXIF_DATA_OPTION_FOLLOW_SPECIFICATION);
    exif_data_load_data(ed, data, (unsigned int)len);
    int o = 1;
    ExifEntry *e = exif_content_get_entry(ed->ifd[EXIF_IFD_0], EXIF_TAG_ORIENTATION);
    if (e && e->format == EXIF_FORMAT_SHORT && e->components >= 1 && e->data && e->size >= 2)
        o = exif_get_short(e->data, exif_data_get_byte_order(ed));
    exif_data_unref(ed);
    return o >= 1 && o <= 8 ? o : 1;
}

/* ---- Pixel conversions ----------------------------------------------------------------------- */

static unsigned char luma(unsigned r, unsigned g, unsigned b)
{
    /* 0.299, 0.587, 0.114 in 16-bit fixed point, rounded */
    return (unsigned char)((19595u * r + 38470u * g + 7471u * b + 32768u) >> 16);
}

static unsigned char over_white(unsigned v, unsigned a)
{
    return (unsigned char)((v * a + 255u * (255u - a) + 127u) / 255u);
}

/* One row of `in_ch` channels (1 G, 2 GA, 3 RGB, 4 RGBA) to `out_ch` (1 or 3). */
static void convert_row(const unsigned char *in, int in_ch, unsigned char *out, int out_ch, int w)
{
    for (int x = 0; x < w; x++, in += in_ch) {
        unsigned r, g, b;
        switch (in_ch) {
        case 1: r = g = b = in[0]; break;
        case 2: r = g = b = over_white(in[0], in[1]); break;
        case 3: r = in[0], g = in[1], b = in[2]; break;
        default:
            r = over_white(in[0], in[3]);
            g = over_white(in[1], in[3]);
            b = over_white(in[2], in[3]);
            break;
        }
        if (out_ch == 1) {
            *out++ = in_ch <= 2 ? (unsigned char)r : luma(r, g, b);
        } else {
            *out++ = (unsigned char)r;
            *out++ = (unsigned char)g;
            *out++ = (unsigned char)b;
        }
    }
}

static int too_large(uint64_t w, uint64_t h, uint64_t max, const char *fmt, char *msg, size_t size)
{
    if (w == 0 || h == 0) {
        snprintf(msg, size, "corrupt %s image: it declares a size of %llux%llu", fmt,
                 (unsigned long long)w, (unsigned long long)h);
        return VG_IMAGE_CORRUPT;
    }
    if (w * h > max || w > MAX_DIM || h > MAX_DIM) {
        snprintf(msg, size,
                 "the %s image is %llux%llu = %llu pixels, more than the limit of %llu "
                 "(--image-max-pixels); it was not decoded",
                 fmt, (unsigned long long)w, (unsigned long long)h, (unsigned long long)(w * h),
                 (unsigned long long)max);
        return VG_IMAGE_TOO_LARGE;
    }
    return VG_IMAGE_OK;
}

/* ---- JPEG ------------------------------------------------------------------------------------ */

struct jdec {
    struct jpeg_decompress_struct ci;
    struct jpeg_error_mgr em;
    struct jpeg_progress_mgr progress;
    jmp_buf jb;
    char why[JMSG_LENGTH_MAX + 64];
    int created;
    unsigned char *pixels; /* the result */
    unsigned char *row;    /* CMYK staging */
};

static void j_error_exit(j_common_ptr ci)
{
    struct jdec *d = (struct jdec *)ci->client_data;
    char text[JMSG_LENGTH_MAX];
    ci->err->format_message(ci, text);
    snprintf(d->why, sizeof d->why, "%s", text);
    longjmp(d->jb, 1);
}

static void j_emit(j_common_ptr ci, int level)
{
    if (level >= 0)
        return; /* trace messages */
    if (ci->err->msg_code == JWRN_JPEG_EOF) {
        struct jdec *d = (struct jdec *)ci->client_data;
        snprintf(d->why, sizeof d->why, "the data ends before the image does (truncated)");
        longjmp(d->jb, 1);
    }
    ci->err->num_warnings++;
}

static void j_output(j_common_ptr ci)
{
    (void)ci;
}

static void j_progress(j_common_ptr ci)
{
    j_decompress_ptr dc = (j_decompress_ptr)ci;
    if (dc->input_scan_number > MAX_JPEG_SCANS) {
        struct jdec *d = (struct jdec *)ci->client_data;
        snprintf(d->why, sizeof d->why, "more than %d progressive scans", MAX_JPEG_SCANS);
        longjmp(d->jb, 1);
    }
}

/* The body of the decoder, after setjmp; errors longjmp out of it. */
static int jpeg_body(struct jdec *d, const unsigned char *data, size_t len, int channels,
                     int min_short, uint64_t max_pixels, struct vg_image *out, char *msg,
                     size_t size)
{
    j_decompress_ptr ci = &d->ci;
    jpeg_create_decompress(ci);
    d->created = 1;
    ci->client_data = d;
    ci->progress = &d->progress;
    jpeg_mem_src(ci, data, (unsigned long)len);
    jpeg_save_markers(ci, JPEG_APP0 + 1, 0xffff);
    jpeg_read_header(ci, TRUE);
    int rc = too_large(ci->image_width, ci->image_height, max_pixels, "JPEG", msg, size);
    if (rc)
        return rc;
    out->src_width = (int)ci->image_width;
    out->src_height = (int)ci->image_height;
    out->orientation = 1;
    for (jpeg_saved_marker_ptr m = ci->marker_list; m; m = m->next)
        if (m->marker == JPEG_APP0 + 1 && m->data_length >= 6 && !memcmp(m->data, "Exif\0\0", 6)) {
            out->orientation = exif_orientation(m->data, m->data_length);
            break;
        }
    int cmyk = ci->jpeg_color_space == JCS_CMYK || ci->jpeg_color_space == JCS_YCCK;
    ci->out_color_space = cmyk ? JCS_CMYK : channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    unsigned short_side = ci->image_width < ci->image_height ? ci->image_width : ci->image_height;
    unsigned denom = 1;
    while (denom < 8 && short_side / (denom * 2) >= (unsigned)(min_short > 0 ? min_short : 1))
        denom *= 2;
    ci->scale_num = 1;
    ci->scale_denom = denom;
    ci->dct_method = JDCT_ISLOW;
    jpeg_start_decompress(ci);
    unsigned w = ci->output_width, h = ci->output_height;
    int comps = ci->output_components;
    if ((cmyk && comps != 4) || (!cmyk && comps != channels)) {
        snprintf(d->why, sizeof d->why, "unexpected component count %d", comps);
        longjmp(d->jb, 1);
    }
    d->pixels = malloc((size_t)w * h * (size_t)channels);
    if (cmyk)
        d->row = malloc((size_t)w * 4);
    if (!d->pixels || (cmyk && !d->row))
        return VG_IMAGE_NOMEM;
    while (ci->output_scanline < h) {
        unsigned char *dst = d->pixels + (size_t)ci->output_scanline * w * (size_t)channels;
        JSAMPROW row = cmyk ? d->row : dst;
        if (jpeg_read_scanlines(ci, &row, 1) != 1) {
            snprintf(d->why, sizeof d->why, "the data ends before the image does (truncated)");
            longjmp(d->jb, 1);
        }
        if (!cmyk)
            continue;
        /* Adobe's CMYK JPEGs store inverted values: 255 means no ink. */
        int inverted = ci->saw_Adobe_marker;
        for (unsigned x = 0; x < w; x++) {
            unsigned c = d->row[4 * x], mg = d->row[4 * x + 1], yl = d->row[4 * x + 2],
                     k = d->row[4 * x + 3];
            if (!inverted)
                c = 255 - c, mg = 255 - mg, yl = 255 - yl, k = 255 - k;
            unsigned r = (c * k + 127) / 255, g = (mg * k + 127) / 255, b = (yl * k + 127) / 255;
            if (channels == 1) {
                dst[x] = luma(r, g, b);
            } else {
                dst[3 * x] = (unsigned char)r;
                dst[3 * x + 1] = (unsigned char)g;
                dst[3 * x + 2] = (unsigned char)b;
            }
        }
    }
    jpeg_finish_decompress(ci);
    out->width = (int)w;
    out->height = (int)h;
    out->channels = channels;
    out->pixels = d->pixels;
    d->pixels = NULL;
    return VG_IMAGE_OK;
}

static int decode_jpeg(const unsigned char *data, size_t len, int channels, int min_short,
                       uint64_t max_pixels, struct vg_image *out, char *msg, size_t size)
{
    struct jdec *d = calloc(1, sizeof *d);
    if (!d)
        return VG_IMAGE_NOMEM;
    d->ci.err = jpeg_std_error(&d->em);
    d->em.error_exit = j_error_exit;
    d->em.emit_message = j_emit;
    d->em.output_message = j_output;
    d->progress.progress_monitor = j_progress;
    int rc;
    if (setjmp(d->jb)) {
        snprintf(msg, size, "corrupt or truncated JPEG image: %s", d->why);
        rc = VG_IMAGE_CORRUPT;
    } else {
        rc = jpeg_body(d, data, len, channels, min_short, max_pixels, out, msg, size);
    }
    if (d->created)
        jpeg_destroy_decompress(&d->ci);
    free(d->pixels);
    free(d->row);
    free(d);
    if (rc == VG_IMAGE_NOMEM)
        snprintf(msg, size, "out of memory decoding the image");
    return rc;
}

/* ---- PNG ------------------------------------------------------------------------------------- */

struct pdec {
    png_structp png;
    png_infop info;
    const unsigned char *data;
    size_t len, pos;
    char why[256];
    unsigned char *raw; /* decoded rows, libpng's channel count */
    png_bytep *rows;
    unsigned char *pixels;
};

static void p_error(png_structp png, png_const_charp text)
{
    struct pdec *d = png_get_error_ptr(png);
    if (!d->why[0])
        snprintf(d->why, sizeof d->why, "%s", text);
    png_longjmp(png, 1);
}

static void p_warning(png_structp png, png_const_charp text)
{
    (void)png;
    (void)text;
}

static void p_read(png_structp png, png_bytep dst, size_t n)
{
    struct pdec *d = png_get_io_ptr(png);
    if (n > d->len - d->pos) {
        snprintf(d->why, sizeof d->why, "the data ends before the image does (truncated)");
        png_longjmp(png, 1);
    }
    memcpy(dst, d->data + d->pos, n);
    d->pos += n;
}

static int png_body(struct pdec *d, int channels, uint64_t max_pixels, struct vg_image *out,
                    char *msg, size_t size)
{
    png_structp png = d->png;
    png_infop info = d->info;
    png_set_read_fn(png, d, p_read);
    png_set_user_limits(png, MAX_DIM, MAX_DIM);
    png_set_chunk_malloc_max(png, MAX_PNG_CHUNK);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    int rc = too_large(w, h, max_pixels, "PNG", msg, size);
    if (rc)
        return rc;
    int color = png_get_color_type(png, info);
    int depth = png_get_bit_depth(png, info);
    if (depth == 16)
        png_set_scale_16(png);
    if (color == PNG_COLOR_TYPE_PALETTE)
        png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8)
        png_set_expand_gray_1_2_4_to_8(png);
    if (png_get_valid(png, info, PNG_INFO_tRNS))
        png_set_tRNS_to_alpha(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int in_ch = png_get_channels(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    if (in_ch < 1 || in_ch > 4 || rowbytes != (size_t)w * (size_t)in_ch)
        png_error(png, "unexpected pixel layout after conversion");
    d->raw = malloc(rowbytes * h);
    d->rows = malloc(h * sizeof *d->rows);
    if (!d->raw || !d->rows)
        return VG_IMAGE_NOMEM;
    for (png_uint_32 y = 0; y < h; y++)
        d->rows[y] = d->raw + (size_t)y * rowbytes;
    png_read_image(png, d->rows);
    png_read_end(png, info);
    out->orientation = 1;
    png_uint_32 n_exif = 0;
    png_bytep exif = NULL;
    if (png_get_eXIf_1(png, info, &n_exif, &exif) && exif && n_exif >= 8 && n_exif < 0xfff0) {
        unsigned char *buf = malloc(n_exif + 6u);
        if (buf) {
            memcpy(buf, "Exif\0\0", 6);
            memcpy(buf + 6, exif, n_exif);
            out->orientation = exif_orientation(buf, n_exif + 6u);
            free(buf);
        }
    }
    d->pixels = malloc((size_t)w * h * (size_t)channels);
    if (!d->pixels)
        return VG_IMAGE_NOMEM;
    for (png_uint_32 y = 0; y < h; y++)
        convert_row(d->rows[y], in_ch, d->pixels + (size_t)y * w * (size_t)channels, channels,
                    (int)w);
    out->width = out->src_width = (int)w;
    out->height = out->src_height = (int)h;
    out->channels = channels;
    out->pixels = d->pixels;
    d->pixels = NULL;
    return VG_IMAGE_OK;
}

static int decode_png(const unsigned char *data, size_t len, int channels, uint64_t max_pixels,
                      struct vg_image *out, char *msg, size_t size)
{
    struct pdec *d = calloc(1, sizeof *d);
    if (!d)
        return VG_IMAGE_NOMEM;
    d->data = data;
    d->len = len;
    int rc = VG_IMAGE_NOMEM;
    d->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, d, p_error, p_warning);
    if (d->png)
        d->info = png_create_info_struct(d->png);
    if (d->png && d->info) {
        if (setjmp(png_jmpbuf(d->png))) {
            snprintf(msg, size, "corrupt or truncated PNG image: %s",
                     d->why[0] ? d->why : "decoding failed");
            rc = VG_IMAGE_CORRUPT;
        } else {
            rc = png_body(d, channels, max_pixels, out, msg, size);
        }
    }
    if (d->png)
        png_destroy_read_struct(&d->png, d->info ? &d->info : NULL, NULL);
    free(d->raw);
    free(d->rows);
    free(d->pixels);
    free(d);
    if (rc == VG_IMAGE_NOMEM)
        snprintf(msg, size, "out of memory decoding the image");
    return rc;
}

int vg_image_decode(const void *data, size_t len, int channels, int min_short_side,
                    uint64_t max_pixels, struct vg_image *out, char *msg, size_t size)
{
    memset(out, 0, sizeof *out);
    const unsigned char *p = data;
    if (len >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff) {
        out->format = "jpeg";
        return decode_jpeg(p, len, channels, min_short_side, max_pixels, out, msg, size);
    }
    if (len >= 8 && !memcmp(p, png_sig, 8)) {
        out->format = "png";
        return decode_png(p, len, channels, max_pixels, out, msg, size);
    }
    snprintf(msg, size, "the data is not a JPEG or PNG image (%s)",
             len == 0 ? "it is empty" : "unknown signature");
    return VG_IMAGE_NOT_IMAGE;
}

void vg_image_free(struct vg_image *img)
{
    if (img) {
        free(img->pixels);
        img->pixels = NULL;
    }
}

/* ---- Preprocessing --------------------------------------------------------------------------- */

/* The image as displayed: EXIF orientation applied (a new buffer, or src itself for 1). */
static unsigned char *orient(const struct vg_image *img, int *ow, int *oh)
{
    int w = img->width, h = img->height, c = img->channels, o = img->orientation;
    int swap = o >= 5;
    *ow = swap ? h : w;
    *oh = swap ? w : h;
    if (o <= 1 || o > 8)
        return img->pixels;
    unsigned char *dst = malloc((size_t)w * h * (size_t)c);
    if (!dst)
        return NULL;
    int W = *ow, H = *oh;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            int sx, sy; /* the stored pixel shown at (x, y) */
            switch (o) {
            case 2: sx = w - 1 - x, sy = y; break;
            case 3: sx = w - 1 - x, sy = h - 1 - y; break;
            case 4: sx = x, sy = h - 1 - y; break;
            case 5: sx = y, sy = x; break;
            case 6: sx = y, sy = h - 1 - x; break;
            case 7: sx = w - 1 - y, sy = h - 1 - x; break;
            default: sx = w - 1 - y, sy = x; break; /* 8 */
            }
            memcpy(dst + ((size_t)y * W + x) * c, img->pixels + ((size_t)sy * w + sx) * c,
                   (size_t)c);
        }
    return dst;
}

/* Averages k x k blocks (the last partial row and column of blocks are dropped). */
static unsigned char *box_reduce(const unsigned char *src, int w, int h, int c, int k, int *rw,
                                 int *rh)
{
    int W = w / k, H = h / k;
    unsigned char *dst = malloc((size_t)W * H * (size_t)c);
    unsigned *acc = calloc((size_t)W * (size_t)c, sizeof *acc);
    if (!dst || !acc) {
        free(dst);
        free(acc);
        return NULL;
    }
    unsigned n = (unsigned)k * (unsigned)k;
    for (int Y = 0; Y < H; Y++) {
        memset(acc, 0, (size_t)W * (size_t)c * sizeof *acc);
        for (int dy = 0; dy < k; dy++) {
            const unsigned char *row = src + (size_t)(Y * k + dy) * w * c;
            for (int X = 0; X < W; X++)
                for (int dx = 0; dx < k; dx++)
                    for (int ch = 0; ch < c; ch++)
                        acc[X * c + ch] += row[(X * k + dx) * c + ch];
        }
        for (int i = 0; i < W * c; i++)
            dst[(size_t)Y * W * c + i] = (unsigned char)((acc[i] + n / 2) / n);
    }
    free(acc);
    *rw = W;
    *rh = H;
    return dst;
}

struct tap {
    int i0, i1;
    float f; /* weight of i1 */
};

/* Source taps of output positions `start`..`start + n - 1` of a `src`-long axis resized to
 * `dst`. */
static void taps(struct tap *t, int n, int start, int src, int dst)
{
    double scale = (double)src / dst;
    for (int i = 0; i < n; i++) {
        double s = (i + start + 0.5) * scale - 0.5;
        if (s < 0)
            s = 0;
        if (s > src - 1)
            s = src - 1;
        int i0 = (int)s;
        t[i].i0 = i0;
        t[i].i1 = i0 + 1 < src ? i0 + 1 : i0;
        t[i].f = (float)(s - i0);
    }
}

int vg_image_preprocess(const struct vg_image_spec *s, const struct vg_image *img, void *dst)
{
    int c = img->channels;
    int w, h;
    unsigned char *oriented = orient(img, &w, &h);
    if (!oriented)
        return -VG_ENOMEM;
    const unsigned char *src = oriented;
    unsigned char *reduced = NULL;
    int rc = 0;
    struct tap *tx = NULL, *ty = NULL;

    int short_side = w < h ? w : h;
    int k = short_side / s->resize_short_side;
    if (k >= 2) {
        reduced = box_reduce(src, w, h, c, k, &w, &h);
        if (!reduced) {
            rc = -VG_ENOMEM;
            goto out;
        }
        src = reduced;
        short_side = w < h ? w : h;
    }
    /* Resized size: the short side exactly resize_short_side, the long one scaled (truncated). */
    int S = s->resize_short_side, rw, rh;
    if (w <= h) {
        rw = S;
        rh = (int)((int64_t)S * h / w);
    } else {
        rh = S;
        rw = (int)((int64_t)S * w / h);
    }
    if (rh < s->crop_h)
        rh = s->crop_h;
    if (rw < s->crop_w)
        rw = s->crop_w;
    int top = (int)lround((rh - s->crop_h) / 2.0), left = (int)lround((rw - s->crop_w) / 2.0);
    int CH = s->crop_h, CW = s->crop_w;
    tx = malloc((size_t)CW * sizeof *tx);
    ty = malloc((size_t)CH * sizeof *ty);
    if (!tx || !ty) {
        rc = -VG_ENOMEM;
        goto out;
    }
    taps(tx, CW, left, w, rw);
    taps(ty, CH, top, h, rh);

    /* Per output channel: which source channel, and the affine map v -> v * a + b on 0..255. */
    float a[3], b[3];
    int from[3];
    for (int ch = 0; ch < c; ch++) {
        from[ch] = s->bgr ? 2 - ch : ch;
        switch (s->norm) {
        case VG_IMAGE_NORM_MEAN_STD:
            a[ch] = 1.0f / (255.0f * s->std[ch]);
            b[ch] = -s->mean[ch] / s->std[ch];
            break;
        case VG_IMAGE_NORM_OFFSET_SCALE:
            a[ch] = 1.0f / s->scale;
            b[ch] = -s->offset / s->scale;
            break;
        default: a[ch] = 1.0f, b[ch] = 0.0f; break;
        }
    }
    size_t plane = (size_t)CH * CW;
    for (int y = 0; y < CH; y++) {
        const unsigned char *r0 = src + (size_t)ty[y].i0 * w * c;
        const unsigned char *r1 = src + (size_t)ty[y].i1 * w * c;
        float fy = ty[y].f;
        for (int x = 0; x < CW; x++) {
            int x0 = tx[x].i0 * c, x1 = tx[x].i1 * c;
            float fx = tx[x].f;
            for (int ch = 0; ch < c; ch++) {
                int sc = from[ch];
                float top_v = r0[x0 + sc] + (r0[x1 + sc] - r0[x0 + sc]) * fx;
                float bot_v = r1[x0 + sc] + (r1[x1 + sc] - r1[x0 + sc]) * fx;
                float v = top_v + (bot_v - top_v) * fy;
                size_t at = s->layout == VG_IMAGE_NCHW ? (size_t)ch * plane + (size_t)y * CW + x
                                                       : ((size_t)y * CW + x) * c + ch;
                if (s->dtype == VG_DT_FLOAT) {
                    ((float *)dst)[at] = v * a[ch] + b[ch];
                } else {
                    long q = lrintf(v);
                    q = q < 0 ? 0 : q > 255 ? 255 : q;
                    if (s->dtype == VG_DT_UINT8)
                        ((uint8_t *)dst)[at] = (uint8_t)q;
                    else
                        ((int8_t *)dst)[at] = (int8_t)(q - 128);
                }
            }
        }
    }
out:
    free(tx);
    free(ty);
    free(reduced);
    if (oriented != img->pixels)
        free(oriented);
    return rc;
}
