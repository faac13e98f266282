/*
 * Image model parts without a server (src/server/image.c, fetch.c, multipart.c): the SSRF
 * address rules and --image-url-allow parsing, multipart field lookup, the "image" config's
 * checks, and the decoders on hostile input (every prefix of a valid JPEG and PNG, random byte
 * flips) which must fail cleanly or decode, never crash or leak (ASan runs this in `make test`).
 * The end-to-end behaviour is tests/server/test_image.sh.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "server/server.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* vg_log is in http.c, which this test does not link; nothing here should log. */
void vg_log(const char *level, const char *fmt, ...)
{
    (void)level;
    (void)fmt;
}

static const char *forbidden(const char *text, const struct vg_cidr *allow, int n)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    if (strchr(text, ':')) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        assert_int_equal(inet_pton(AF_INET6, text, &a->sin6_addr), 1);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        assert_int_equal(inet_pton(AF_INET, text, &a->sin_addr), 1);
    }
    return vg_addr_forbidden((const struct sockaddr *)&ss, allow, n);
}

static void test_address_rules(void **state)
{
    (void)state;
    static const struct {
        const char *addr, *why; /* why: a word of the reason, or NULL when allowed */
    } cases[] = {
        {"8.8.8.8", NULL},
        {"93.184.216.34", NULL},
        {"0.0.0.0", "unspecified"},
        {"0.1.2.3", "unspecified"},
        {"10.0.0.1", "private"},
        {"10.255.255.255", "private"},
        {"11.0.0.1", NULL},
        {"100.64.0.1", "shared"},
        {"100.128.0.1", NULL},
        {"127.0.0.1", "loopback"},
        {"127.255.0.9", "loopback"},
        {"169.254.169.254", "link-local"},
        {"172.15.255.255", NULL},
        {"172.16.0.1", "private"},
        {"172.31.255.255", "private"},
        {"172.32.0.0", NULL},
        {"192.0.0.8", "reserved"},
        {"192.0.2.1", "documentation"},
        {"192.88.99.1", "reserved"},
        {"192.168.1.1", "private"},
        {"198.18.0.1", "benchmarking"},
        {"198.19.255.255", "benchmarking"},
        {"198.20.0.0", NULL},
        {"198.51.100.7", "documentation"},
        {"203.0.113.9", "documentation"},
        {"224.0.0.1", "multicast"},
        {"239.255.255.250", "multicast"},
        {"240.0.0.1", "reserved"},
        {"255.255.255.255", "reserved"},
        {"2606:4700::1111", NULL},
        {"::", "unspecified"},
        {"::1", "loopback"},
        {"::2", "reserved"},
        {"::ffff:10.0.0.1", "private"},
        {"::ffff:127.0.0.1", "loopback"},
        {"::ffff:8.8.8.8", NULL},
        {"64:ff9b::a9fe:a9fe", "link-local"},
        {"64:ff9b::808:808", NULL},
        {"2002:c0a8:0101::1", "private"},
        {"2002:0808:0808::1", NULL},
        {"100::1", "discard"},
        {"2001::1", "reserved"},
        {"2001:db8::1", "documentation"},
        {"fc00::1", "unique local"},
        {"fd12:3456::1", "unique local"},
        {"fe80::1", "link-local"},
        {"febf::1", "link-local"},
        {"fec0::1", "site-local"},
        {"ff02::1", "multicast"},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        const char *why = forbidden(cases[i].addr, NULL, 0);
        if (!cases[i].why != !why || (why && !strstr(why, cases[i].why))) {
            fprintf(stderr, "%s: got '%s', expected '%s'\n", cases[i].addr, why ? why : "allowed",
                    cases[i].why ? cases[i].why : "allowed");
            fail();
        }
    }
}

static void test_allow_list(void **state)
{
    (void)state;
    struct vg_cidr *allow = NULL;
    int n = 0;
    char msg[256];
    assert_int_equal(vg_cidr_parse_list(" 127.0.0.0/8, 10.1.0.0/16 ,fd00::/8,192.168.1.7", &allow,
                                        &n, msg, sizeof msg),
                     0);
    assert_int_equal(n, 4);
    assert_null(forbidden("127.0.0.1", allow, n));
    assert_null(forbidden("::ffff:127.0.0.1", allow, n)); /* mapped: the IPv4 entry counts */
    assert_null(forbidden("10.1.200.3", allow, n));
    assert_non_null(forbidden("10.2.0.1", allow, n));
    assert_null(forbidden("fd00::5", allow, n));
    assert_non_null(forbidden("fc00::5", allow, n));
    assert_null(forbidden("192.168.1.7", allow, n));
    assert_non_null(forbidden("192.168.1.8", allow, n));
    assert_non_null(forbidden("::1", allow, n)); /* IPv6 loopback is not 127/8 */
    free(allow);

    static const char *const bad[] = {"10.0.0.0/33", "::/129",       "10.0.0/8",   "nonsense",
                                      "10.0.0.0/",   "10.0.0.0/8,,", "1.2.3.4/-1", "fe80::/x"};
    for (size_t i = 0; i < N_ELEMS(bad); i++) {
        allow = NULL;
        msg[0] = 0;
        if (vg_cidr_parse_list(bad[i], &allow, &n, msg, sizeof msg) == 0) {
            fprintf(stderr, "'%s' was accepted\n", bad[i]);
            fail();
        }
        assert_null(allow);
        assert_non_null(strstr(msg, "is not a network"));
    }
    assert_int_equal(vg_cidr_parse_list("", &allow, &n, msg, sizeof msg), 0);
    assert_int_equal(n, 0);
    assert_int_equal(vg_cidr_parse_list(NULL, &allow, &n, msg, sizeof msg), 0);
}

static void test_multipart(void **state)
{
    (void)state;
    const char *ct = "multipart/form-data; boundary=\"XyZ\"";
    const char body[] = "preamble\r\n"
                        "--XyZ\r\n"
                        "Content-Disposition: form-data; name=\"id\"\r\n\r\n"
                        "abc\r\n"
                        "--XyZ\r\n"
                        "content-disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n"
                        "Content-Type: image/png\r\n\r\n"
                        "\x89PNG\r\n--XyZnot a boundary\r\n"
                        "--XyZ--\r\n";
    const char *data, *pt;
    size_t len, ptl;
    char msg[256];
    assert_int_equal(vg_multipart_field(ct, body, sizeof body - 1, "file", &data, &len, &pt, &ptl,
                                        msg, sizeof msg),
                     1);
    assert_int_equal(len, strlen("\x89PNG\r\n--XyZnot a boundary"));
    assert_memory_equal(data, "\x89PNG\r\n--XyZnot a boundary", len);
    assert_int_equal(ptl, 9);
    assert_memory_equal(pt, "image/png", 9);
    assert_int_equal(vg_multipart_field(ct, body, sizeof body - 1, "id", &data, &len, &pt, &ptl,
                                        msg, sizeof msg),
                     1);
    assert_int_equal(len, 3);
    assert_null(pt);
    assert_int_equal(vg_multipart_field(ct, body, sizeof body - 1, "top_k", &data, &len, &pt, &ptl,
                                        msg, sizeof msg),
                     0);
    /* "name" must match whole: "files" is not "file" */
    const char other[] = "--b\r\nContent-Disposition: form-data; name=\"files\"\r\n\r\nx\r\n--b--";
    assert_int_equal(vg_multipart_field("multipart/form-data; boundary=b", other, sizeof other - 1,
                                        "file", &data, &len, &pt, &ptl, msg, sizeof msg),
                     0);
    /* malformed: no boundary parameter, boundary absent, unterminated part */
    assert_int_equal(vg_multipart_field("multipart/form-data", body, sizeof body - 1, "file", &data,
                                        &len, &pt, &ptl, msg, sizeof msg),
                     -1);
    assert_int_equal(vg_multipart_field("multipart/form-data; boundary=QQ", body, sizeof body - 1,
                                        "file", &data, &len, &pt, &ptl, msg, sizeof msg),
                     -1);
    const char cut[] = "--b\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nxyz";
    assert_int_equal(vg_multipart_field("multipart/form-data; boundary=b", cut, sizeof cut - 1,
                                        "file", &data, &len, &pt, &ptl, msg, sizeof msg),
                     -1);
    assert_non_null(strstr(msg, "malformed multipart"));
    /* every truncation of the good body is handled (found, absent or malformed), never a crash */
    for (size_t n = 0; n < sizeof body - 1; n++) {
        char *copy = malloc(n ? n : 1);
        memcpy(copy, body, n);
        int rc = vg_multipart_field(ct, copy, n, "file", &data, &len, &pt, &ptl, msg, sizeof msg);
        assert_true(rc >= -1 && rc <= 1);
        if (rc == 1)
            assert_true(data >= copy && data + len <= copy + n);
        free(copy);
    }
}

static void test_spec(void **state)
{
    (void)state;
    static const struct {
        const char *json, *error; /* error: a substring, or NULL when valid */
    } cases[] = {
        {"{\"layout\":\"NCHW\",\"channels\":3,\"crop\":[224,224],\"resize_short_side\":256,"
         "\"normalize\":{\"type\":\"mean_std\",\"mean\":[0.485,0.456,0.406],"
         "\"std\":[0.229,0.224,0.225]}}",
         NULL},
        {"{\"layout\":\"NHWC\",\"channels\":1,\"crop\":[8,8],\"dtype\":\"uint8\"}", NULL},
        {"{\"layout\":\"NHWC\",\"channels\":3,\"crop\":[8,8],\"dtype\":\"int8\","
         "\"color_order\":\"BGR\",\"output\":\"probabilities\"}",
         NULL},
        {"{\"layout\":\"NCWH\",\"channels\":3,\"crop\":[8,8]}", "'image.layout'"},
        {"{\"layout\":\"NCHW\",\"channels\":2,\"crop\":[8,8]}", "'image.channels'"},
        {"{\"layout\":\"NCHW\",\"channels\":1,\"crop\":[8,8],\"color_order\":\"BGR\"}",
         "needs 3 channels"},
        {"{\"layout\":\"NCHW\",\"channels\":3,\"crop\":[8]}", "'image.crop'"},
        {"{\"layout\":\"NCHW\",\"channels\":3,\"crop\":[8,8.5]}", "'image.crop'"},
        {"{\"layout\":\"NCHW\",\"channels\":3,\"crop\":[300,300],\"resize_short_side\":256}",
         "larger than 'image.resize_short_side'"},
        {"{\"layout\":\"NCHW\",\"channels\":3,\"crop\":[8,8],\"dtype\":\"float16\"}",
         "'image.dtype'"},
        {"{\"layout\":\"NCHW\",\"channels\":3,\"crop\":[8,8],\"normalize\":{\"type\":\"mean_std\","
         "\"mean\":[0.5],\"std\":[0.5]}}",
         "3 numbers each"},
        {"{\"layout\":\"NCHW\",\"channels\":3,\"crop\":[8,8],\"normalize\":{\"type\":\"mean_std\","
         "\"mean\":[0,0,0],\"std\":[1,0,1]}}",
         "std > 0"},
        {"{\"layout\":\"NCHW\",\"channels\":3,\"crop\":[8,8],\"normalize\":{\"type\":"
         "\"offset_scale\",\"offset\":127,\"scale\":0}}",
         "scale not 0"},
        {"{\"layout\":\"NCHW\",\"channels\":3,\"crop\":[8,8],\"normalize\":{\"type\":\"zscore\"}}",
         "'image.normalize.type'"},
        {"{\"layout\":\"NCHW\",\"channels\":3,\"crop\":[8,8],\"dtype\":\"uint8\","
         "\"normalize\":{\"type\":\"offset_scale\",\"offset\":127,\"scale\":128}}",
         "must be none for dtype uint8"},
        {"{\"layout\":\"NCHW\",\"channels\":3,\"crop\":[8,8],\"output\":\"softmax\"}",
         "'image.output'"},
        {"{\"layout\":\"NCHW\",\"channels\":3,\"crop\":[8,8],\"resize\":8}",
         "unknown key 'image.resize'"},
        {"[1]", "needs an 'image' object"},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        cJSON *j = cJSON_Parse(cases[i].json);
        assert_non_null(j);
        struct vg_image_spec s;
        char msg[512] = "";
        int rc = vg_image_spec_parse(j, NULL, &s, msg, sizeof msg);
        cJSON_Delete(j);
        if (cases[i].error ? rc == 0 || !strstr(msg, cases[i].error) : rc != 0) {
            fprintf(stderr, "case %zu: rc %d, message '%s', expected '%s'\n", i, rc, msg,
                    cases[i].error ? cases[i].error : "valid");
            fail();
        }
    }
    cJSON *j = cJSON_Parse("{\"layout\":\"NCHW\",\"channels\":3,\"crop\":[8,8]}");
    cJSON *k = cJSON_CreateNumber(0);
    struct vg_image_spec s;
    char msg[256];
    assert_int_equal(vg_image_spec_parse(j, k, &s, msg, sizeof msg), -1);
    assert_non_null(strstr(msg, "'top_k'"));
    cJSON_SetNumberValue(k, 7);
    assert_int_equal(vg_image_spec_parse(j, k, &s, msg, sizeof msg), 0);
    assert_int_equal(s.top_k, 7);
    assert_int_equal(s.resize_short_side, 8);
    assert_int_equal(s.softmax, 1);
    cJSON_Delete(j);
    cJSON_Delete(k);
}

/* A 16x8 grey PNG: zlib stored blocks, CRCs computed here. */
static uint32_t crc32_of(const unsigned char *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
    }
    return ~c;
}

static size_t put_chunk(unsigned char *out, const char *type, const unsigned char *data, size_t n)
{
    out[0] = (unsigned char)(n >> 24), out[1] = (unsigned char)(n >> 16);
    out[2] = (unsigned char)(n >> 8), out[3] = (unsigned char)n;
    memcpy(out + 4, type, 4);
    if (n)
        memcpy(out + 8, data, n);
    uint32_t c = crc32_of(out + 4, n + 4);
    out[8 + n] = (unsigned char)(c >> 24), out[9 + n] = (unsigned char)(c >> 16);
    out[10 + n] = (unsigned char)(c >> 8), out[11 + n] = (unsigned char)c;
    return n + 12;
}

static size_t make_png(unsigned char *out, uint32_t w, uint32_t h)
{
    size_t o = 0;
    memcpy(out, "\x89PNG\r\n\x1a\n", 8);
    o = 8;
    unsigned char ihdr[13] = {(unsigned char)(w >> 24),
                              (unsigned char)(w >> 16),
                              (unsigned char)(w >> 8),
                              (unsigned char)w,
                              (unsigned char)(h >> 24),
                              (unsigned char)(h >> 16),
                              (unsigned char)(h >> 8),
                              (unsigned char)h,
                              8,
                              0,
                              0,
                              0,
                              0};
    o += put_chunk(out + o, "IHDR", ihdr, 13);
    /* zlib: header, one stored block of h rows (filter 0 + w bytes), adler32 */
    unsigned char z[2 + 5 + 8 * 17 + 4];
    size_t raw = (size_t)h * (w + 1), zo = 0;
    z[zo++] = 0x78, z[zo++] = 0x01;
    z[zo++] = 1, z[zo++] = (unsigned char)raw, z[zo++] = (unsigned char)(raw >> 8);
    z[zo++] = (unsigned char)~raw, z[zo++] = (unsigned char)(~raw >> 8);
    uint32_t a = 1, b = 0;
    for (uint32_t y = 0; y < h; y++)
        for (uint32_t x = 0; x <= w; x++) {
            unsigned char v = x == 0 ? 0 : (unsigned char)(x - 1 < w / 2 ? 250 : 10);
            z[zo++] = v;
            a = (a + v) % 65521, b = (b + a) % 65521;
        }
    uint32_t ad = b << 16 | a;
    z[zo++] = (unsigned char)(ad >> 24), z[zo++] = (unsigned char)(ad >> 16);
    z[zo++] = (unsigned char)(ad >> 8), z[zo++] = (unsigned char)ad;
    o += put_chunk(out + o, "IDAT", z, zo);
    o += put_chunk(out + o, "IEND", NULL, 0);
    return o;
}

static void test_decode_png(void **state)
{
    (void)state;
    unsigned char png[512];
    size_t n = make_png(png, 16, 8);
    struct vg_image img;
    char msg[512];
    assert_int_equal(vg_image_decode(png, n, 1, 8, 1000, &img, msg, sizeof msg), VG_IMAGE_OK);
    assert_int_equal(img.width, 16);
    assert_int_equal(img.height, 8);
    assert_int_equal(img.pixels[0], 250);
    assert_int_equal(img.pixels[15], 10);
    /* preprocess: short side 8 -> 16x8, centre crop 8x8 of columns 4..11 (4 bright, 4 dark) */
    struct vg_image_spec s = {.layout = VG_IMAGE_NHWC,
                              .channels = 1,
                              .resize_short_side = 8,
                              .crop_h = 8,
                              .crop_w = 8,
                              .dtype = VG_DT_UINT8};
    uint8_t out[64];
    assert_int_equal(vg_image_preprocess(&s, &img, out), 0);
    assert_int_equal(out[0], 250);
    assert_int_equal(out[3], 250);
    assert_int_equal(out[4], 10);
    assert_int_equal(out[7], 10);
    /* float, offset_scale, with orientation 6 (rotated: bright half on top) */
    img.orientation = 6;
    s.dtype = VG_DT_FLOAT;
    s.norm = VG_IMAGE_NORM_OFFSET_SCALE;
    s.offset = 127, s.scale = 128;
    float f[64];
    assert_int_equal(vg_image_preprocess(&s, &img, f), 0);
    assert_float_equal(f[0], (250 - 127) / 128.0f, 1e-6);
    assert_float_equal(f[63], (10 - 127) / 128.0f, 1e-6);
    vg_image_free(&img);
    /* the pixel cap, checked on the header */
    assert_int_equal(vg_image_decode(png, n, 1, 8, 100, &img, msg, sizeof msg), VG_IMAGE_TOO_LARGE);
    assert_non_null(strstr(msg, "16x8 = 128 pixels"));
    /* every prefix: an error (or, never, success on a short file), nothing leaked */
    for (size_t k = 0; k < n; k++) {
        int rc = vg_image_decode(png, k, 3, 8, 1000, &img, msg, sizeof msg);
        assert_int_not_equal(rc, VG_IMAGE_OK);
        assert_null(img.pixels);
    }
    /* random single-byte corruptions after the signature */
    srand(7);
    for (int t = 0; t < 2000; t++) {
        unsigned char bad[512];
        memcpy(bad, png, n);
        bad[8 + (size_t)rand() % (n - 8)] ^= (unsigned char)(1 + rand() % 255);
        int rc = vg_image_decode(bad, n, 3, 8, 1000000, &img, msg, sizeof msg);
        if (rc == VG_IMAGE_OK)
            vg_image_free(&img);
        else
            assert_null(img.pixels);
    }
}

static void test_not_images(void **state)
{
    (void)state;
    struct vg_image img;
    char msg[256];
    static const unsigned char jpeg_head[] = {0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 'J', 'F'};
    assert_int_equal(vg_image_decode("", 0, 3, 8, 100, &img, msg, sizeof msg), VG_IMAGE_NOT_IMAGE);
    assert_int_equal(vg_image_decode("GIF89a....", 10, 3, 8, 100, &img, msg, sizeof msg),
                     VG_IMAGE_NOT_IMAGE);
    assert_int_equal(vg_image_decode(jpeg_head, sizeof jpeg_head, 3, 8, 100, &img, msg, sizeof msg),
                     VG_IMAGE_CORRUPT);
    assert_non_null(strstr(msg, "JPEG"));
    assert_true(vg_image_sniff(jpeg_head, sizeof jpeg_head));
    assert_false(vg_image_sniff("GIF89a", 6));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_address_rules), cmocka_unit_test(test_allow_list),
        cmocka_unit_test(test_multipart),     cmocka_unit_test(test_spec),
        cmocka_unit_test(test_decode_png),    cmocka_unit_test(test_not_images),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
