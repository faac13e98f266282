/*
 * Unit tests of the parts of `vigil load` that do not need a server (src/cli/load_*.c, linked
 * in by tests/cmake/load.cmake): the histogram's buckets and percentile accuracy against exact
 * order statistics, the HTTP response parser, URL parsing, the JSON validator and the answer
 * checks as tables, request ids, the schedule's counts and the error interleaving.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cli/load.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* ---- histogram ----------------------------------------------------------------------------- */

static void test_hist_buckets(void **state)
{
    (void)state;
    /* every bucket's range starts where the previous one ended, and indexes map back */
    for (int i = 1; i < VG_HIST_BUCKETS; i++) {
        assert_int_equal(vg_hist_bucket_low(i), vg_hist_bucket_high(i - 1) + 1);
        assert_int_equal(vg_hist_index(vg_hist_bucket_low(i)), i);
        assert_int_equal(vg_hist_index(vg_hist_bucket_high(i)), i);
        /* width at most 1/128 of the lowest value above the exact range */
        uint64_t lo = vg_hist_bucket_low(i), width = vg_hist_bucket_high(i) - lo + 1;
        if (lo >= 2 * VG_HIST_HALF)
            assert_true(width * VG_HIST_HALF <= lo);
    }
    assert_int_equal(vg_hist_index(0), 0);
    assert_int_equal(vg_hist_index(255), 255);
    assert_int_equal(vg_hist_index(256), 256);
    assert_true(vg_hist_bucket_high(VG_HIST_BUCKETS - 1) >= 60ULL * 1000000000ULL);
    assert_int_equal(vg_hist_index(UINT64_MAX), VG_HIST_BUCKETS - 1);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void test_hist_percentiles(void **state)
{
    (void)state;
    enum { N = 200000 };
    uint64_t *v = malloc(N * sizeof *v);
    struct vg_hist *h = malloc(sizeof *h), *a = malloc(sizeof *a), *b = malloc(sizeof *b);
    assert_non_null(v);
    assert_non_null(h);
    assert_non_null(a);
    assert_non_null(b);
    vg_hist_init(h);
    vg_hist_init(a);
    vg_hist_init(b);
    uint64_t x = 12345;
    for (int i = 0; i < N; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        double u = (double)(x >> 11) * 0x1p-53;
        /* log-uniform from 1 µs to 10 s: every decade weighs the same */
        v[i] = (uint64_t)(1000.0 * pow(1e7, u));
        vg_hist_record(h, v[i]);
        vg_hist_record(i % 2 ? a : b, v[i]);
    }
    vg_hist_merge(a, b);
    qsort(v, N, sizeof *v, cmp_u64);
    static const double ps[] = {1, 10, 50, 90, 99, 99.9, 99.99};
    for (size_t k = 0; k < N_ELEMS(ps); k++) {
        uint64_t exact = v[(size_t)ceil(ps[k] / 100 * N) - 1];
        uint64_t got = vg_hist_percentile(h, ps[k]);
        assert_true(got >= exact);
        assert_true((double)(got - exact) <= (double)exact / 128.0 + 1);
        assert_int_equal(vg_hist_percentile(a, ps[k]), got);
    }
    assert_int_equal(vg_hist_percentile(h, 100), v[N - 1]);
    assert_int_equal(h->max_ns, v[N - 1]);
    assert_int_equal(h->min_ns, v[0]);
    assert_int_equal(h->total, N);
    /* count above: exact up to the bucket holding the threshold */
    uint64_t t = 5000000, above = 0;
    for (int i = 0; i < N; i++)
        above += vg_hist_index(v[i]) > vg_hist_index(t);
    assert_int_equal(vg_hist_count_above(h, t), above);
    struct vg_hist *empty = a;
    vg_hist_init(empty);
    assert_int_equal(vg_hist_percentile(empty, 50), 0);
    free(v);
    free(h);
    free(a);
    free(b);
}

/* ---- HTTP ---------------------------------------------------------------------------------- */

static void test_http_parse(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int eof, want, status, close;
        const char *body;
    } cases[] = {
        {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Request-Id: abc\r\n\r\nhello", 0, VG_HTTP_DONE,
         200, 0, "hello"},
        {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel", 0, VG_HTTP_MORE, 0, 0, NULL},
        {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel", 1, VG_HTTP_BAD, 0, 0, NULL},
        {"HTTP/1.1 200 OK\r\nContent-Len", 0, VG_HTTP_MORE, 0, 0, NULL},
        {"HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\nConnection: keep-alive, Close\r\n\r\n{}",
         0, VG_HTTP_DONE, 404, 1, "{}"},
        {"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", 0, VG_HTTP_DONE, 200, 1, ""},
        {"HTTP/1.0 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n", 0, VG_HTTP_DONE,
         200, 0, ""},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=1\r\nhello\r\n6\r\n world\r\n"
         "0\r\nTrailer: 1\r\n\r\n",
         0, VG_HTTP_DONE, 200, 0, "hello world"},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n", 0,
         VG_HTTP_MORE, 0, 0, NULL},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 0, VG_HTTP_BAD, 0, 0, NULL},
        {"HTTP/1.1 200 OK\r\n\r\nuntil the end", 0, VG_HTTP_MORE, 0, 0, NULL},
        {"HTTP/1.1 200 OK\r\n\r\nuntil the end", 1, VG_HTTP_DONE, 200, 1, "until the end"},
        {"HTTP/1.1 204 No Content\r\n\r\n", 0, VG_HTTP_DONE, 204, 0, ""},
        {"HTTP/1.1 100 Continue\r\n\r\n", 0, VG_HTTP_BAD, 0, 0, NULL},
        {"HTTP/2 200 OK\r\n\r\n", 0, VG_HTTP_BAD, 0, 0, NULL},
        {"HTTP/1.1 2x0 OK\r\n\r\n", 0, VG_HTTP_BAD, 0, 0, NULL},
        {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 0, VG_HTTP_BAD, 0,
         0, NULL},
        {"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", 0, VG_HTTP_BAD, 0, 0, NULL},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", 0, VG_HTTP_BAD, 0, 0, NULL},
        {"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", 0, VG_HTTP_BAD, 0, 0, NULL},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        char buf[512];
        size_t len = strlen(cases[i].text);
        memcpy(buf, cases[i].text, len + 1);
        struct vg_http_resp r;
        vg_http_resp_reset(&r);
        int got = vg_http_resp_parse(&r, buf, len, cases[i].eof);
        if (got != cases[i].want)
            fail_msg("case %zu: got %d, want %d", i, got, cases[i].want);
        if (got != VG_HTTP_DONE)
            continue;
        assert_int_equal(r.status, cases[i].status);
        assert_int_equal(r.close, cases[i].close);
        assert_int_equal(r.body_len, strlen(cases[i].body));
        assert_memory_equal(buf + r.body_off, cases[i].body, r.body_len);
    }
    /* byte by byte: MORE until the last byte, and the request id is found */
    const char *text = "HTTP/1.1 200 OK\r\nX-Request-Id:  load-00000000042 \r\n"
                       "Content-Length: 3\r\n\r\nabc";
    char buf[256];
    struct vg_http_resp r;
    vg_http_resp_reset(&r);
    size_t n = strlen(text);
    for (size_t k = 1; k <= n; k++) {
        memcpy(buf, text, k);
        int got = vg_http_resp_parse(&r, buf, k, 0);
        assert_int_equal(got, k == n ? VG_HTTP_DONE : VG_HTTP_MORE);
    }
    assert_int_equal(r.id_len, 16);
    assert_memory_equal(buf + r.id_off, "load-00000000042", 16);
}

static void test_url(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int ok;
        const char *host, *port, *authority, *base;
    } cases[] = {
        {"http://127.0.0.1:8000", 1, "127.0.0.1", "8000", "127.0.0.1:8000", ""},
        {"http://localhost", 1, "localhost", "80", "localhost", ""},
        {"HTTP://example.org:81/vigil/", 1, "example.org", "81", "example.org:81", "/vigil"},
        {"http://[::1]:9000/a/b", 1, "::1", "9000", "[::1]:9000", "/a/b"},
        {"http://[::1]", 1, "::1", "80", "[::1]", ""},
        {"https://127.0.0.1", 0, NULL, NULL, NULL, NULL},
        {"127.0.0.1:8000", 0, NULL, NULL, NULL, NULL},
        {"http://", 0, NULL, NULL, NULL, NULL},
        {"http://host:0", 0, NULL, NULL, NULL, NULL},
        {"http://host:65536", 0, NULL, NULL, NULL, NULL},
        {"http://host:8x", 0, NULL, NULL, NULL, NULL},
        {"http://[::1", 0, NULL, NULL, NULL, NULL},
        {"http://user@host", 0, NULL, NULL, NULL, NULL},
        {"http://host/a?b=1", 0, NULL, NULL, NULL, NULL},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        struct vg_url u;
        char msg[256];
        int rc = vg_url_parse(cases[i].text, &u, msg, sizeof msg);
        if ((rc == 0) != cases[i].ok)
            fail_msg("case %zu (%s): rc %d", i, cases[i].text, rc);
        if (rc)
            continue;
        assert_string_equal(u.host, cases[i].host);
        assert_string_equal(u.port, cases[i].port);
        assert_string_equal(u.authority, cases[i].authority);
        assert_string_equal(u.base, cases[i].base);
    }
}

/* ---- JSON and answers ---------------------------------------------------------------------- */

static void test_json_valid(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int valid;
    } cases[] = {
        {"{}", 1},
        {" [1, -2.5e-3, 0, true, false, null, \"x\\u00e9\\n\", {\"a\": []}] ", 1},
        {"\"caf\xc3\xa9\"", 1},
        {"{\"a\":1,}", 0},
        {"{\"a\":1", 0},
        {"[1 2]", 0},
        {"01", 0},
        {"1.", 0},
        {"-", 0},
        {".5", 0},
        {"NaN", 0},
        {"\"\\x\"", 0},
        {"\"\\u12\"", 0},
        {"\"a\nb\"", 0},
        {"\"\xc3\"", 0},
        {"\"\xed\xa0\x80\"", 0}, /* a surrogate in UTF-8 */
        {"{} x", 0},
        {"", 0},
        {"tru", 0},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++)
        if (vg_json_valid(cases[i].text, strlen(cases[i].text)) != cases[i].valid)
            fail_msg("case %zu: '%s'", i, cases[i].text);
    /* nesting is capped */
    char deep[300];
    memset(deep, '[', 150);
    memset(deep + 150, ']', 150);
    assert_false(vg_json_valid(deep, 300));
    assert_true(vg_json_valid(deep + 100, 100));
}

static void test_check_prediction(void **state)
{
    (void)state;
    static const char *const classes[] = {"setosa", "versi\"color", "virginica"};
    struct vg_answer_spec spec = {"iris", 1, 3, classes};
    static const char *const id = "load-00000000007";
    static const struct {
        const char *body;
        int ok;
    } cases[] = {
        {"{\"id\":\"load-00000000007\",\"model\":\"iris\",\"version\":1,\"prediction\":\"setosa\","
         "\"probabilities\":{\"setosa\":0.99999905,\"versi\\\"color\":0,\"virginica\":0}}",
         1},
        {"{\"probabilities\":{\"virginica\":0.6,\"setosa\":0.1,\"versi\\\"color\":0.3},"
         "\"prediction\":\"virginica\",\"version\":2,\"model\":\"iris\",\"id\":\"load-"
         "00000000007\"}",
         1},
        {"{\"id\":\"load-00000000007\",\"model\":\"iris\",\"version\":1,\"prediction\":"
         "\"versi\\u0022color\",\"probabilities\":{\"setosa\":0.2,\"versi\\\"color\":0.5,"
         "\"virginica\":0.3}}",
         1},
        /* wrong id, model, version */
        {"{\"id\":\"load-00000000008\",\"model\":\"iris\",\"version\":1,\"prediction\":\"setosa\","
         "\"probabilities\":{\"setosa\":1,\"versi\\\"color\":0,\"virginica\":0}}",
         0},
        {"{\"id\":\"load-00000000007\",\"model\":\"other\",\"version\":1,\"prediction\":\"setosa\","
         "\"probabilities\":{\"setosa\":1,\"versi\\\"color\":0,\"virginica\":0}}",
         0},
        {"{\"id\":\"load-00000000007\",\"model\":\"iris\",\"version\":\"1\",\"prediction\":"
         "\"setosa\",\"probabilities\":{\"setosa\":1,\"versi\\\"color\":0,\"virginica\":0}}",
         0},
        /* a class that is not the model's; a class missing; a class twice */
        {"{\"id\":\"load-00000000007\",\"model\":\"iris\",\"version\":1,\"prediction\":\"rose\","
         "\"probabilities\":{\"setosa\":1,\"versi\\\"color\":0,\"virginica\":0}}",
         0},
        {"{\"id\":\"load-00000000007\",\"model\":\"iris\",\"version\":1,\"prediction\":\"setosa\","
         "\"probabilities\":{\"setosa\":1,\"virginica\":0}}",
         0},
        {"{\"id\":\"load-00000000007\",\"model\":\"iris\",\"version\":1,\"prediction\":\"setosa\","
         "\"probabilities\":{\"setosa\":0.5,\"setosa\":0.5,\"virginica\":0}}",
         0},
        /* probabilities out of range, not summing to 1, null; label not the most probable */
        {"{\"id\":\"load-00000000007\",\"model\":\"iris\",\"version\":1,\"prediction\":\"setosa\","
         "\"probabilities\":{\"setosa\":1.5,\"versi\\\"color\":-0.5,\"virginica\":0}}",
         0},
        {"{\"id\":\"load-00000000007\",\"model\":\"iris\",\"version\":1,\"prediction\":\"setosa\","
         "\"probabilities\":{\"setosa\":0.5,\"versi\\\"color\":0.1,\"virginica\":0.1}}",
         0},
        {"{\"id\":\"load-00000000007\",\"model\":\"iris\",\"version\":1,\"prediction\":\"setosa\","
         "\"probabilities\":{\"setosa\":null,\"versi\\\"color\":0,\"virginica\":0}}",
         0},
        {"{\"id\":\"load-00000000007\",\"model\":\"iris\",\"version\":1,\"prediction\":\"setosa\","
         "\"probabilities\":{\"setosa\":0.2,\"versi\\\"color\":0.7,\"virginica\":0.1}}",
         0},
        /* garbled */
        {"{\"id\":\"load-00000000007\",\"model\":\"iris\",\"version\":1,\"prediction\":\"setosa\","
         "\"probabilities\":{\"setosa\":1,\"versi\\\"color\":0,\"virginica\":0}",
         0},
        {"", 0},
        {"[]", 0},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        const char *why = NULL;
        int rc = vg_check_prediction(&spec, cases[i].body, strlen(cases[i].body), id, 16, &why);
        if ((rc == 0) != cases[i].ok)
            fail_msg("case %zu: rc %d (%s)", i, rc, why ? why : "-");
        if (rc)
            assert_non_null(why);
    }
    /* regression */
    struct vg_answer_spec reg = {"house", 0, 0, NULL};
    const char *why;
    const char *good = "{\"id\":\"load-00000000007\",\"model\":\"house\",\"version\":3,"
                       "\"prediction\":241.5}";
    const char *bad = "{\"id\":\"load-00000000007\",\"model\":\"house\",\"version\":3,"
                      "\"prediction\":null}";
    assert_int_equal(vg_check_prediction(&reg, good, strlen(good), id, 16, &why), 0);
    assert_int_equal(vg_check_prediction(&reg, bad, strlen(bad), id, 16, &why), -1);
    /* integer class labels come as JSON numbers */
    static const char *const digits[] = {"0", "1", "2"};
    struct vg_answer_spec ints = {"m", 1, 3, digits};
    const char *num = "{\"id\":\"load-00000000007\",\"model\":\"m\",\"version\":1,"
                      "\"prediction\":2,\"probabilities\":{\"0\":0,\"1\":0.25,\"2\":0.75}}";
    assert_int_equal(vg_check_prediction(&ints, num, strlen(num), id, 16, &why), 0);
}

static void test_check_error_body(void **state)
{
    (void)state;
    static const struct {
        const char *body;
        int ok;
    } cases[] = {
        {"{\"error\":\"missing feature 'petal_width'\"}", 1},
        {"{\"error\":\"\"}", 0},
        {"{\"error\":3}", 0},
        {"{\"message\":\"x\"}", 0},
        {"{\"error\":\"x\"", 0},
        {"not json", 0},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        const char *why = NULL;
        int rc = vg_check_error_body(cases[i].body, strlen(cases[i].body), &why);
        if ((rc == 0) != cases[i].ok)
            fail_msg("case %zu: rc %d", i, rc);
    }
}

/* ---- ids, schedule, kinds ------------------------------------------------------------------ */

static void test_request_id(void **state)
{
    (void)state;
    char id[VG_LOAD_ID_LEN + 1] = {0};
    vg_load_format_id(id, "load", "k3f9a2", 0);
    assert_string_equal(id, "load-k3f9a2-00000000000");
    vg_load_format_id(id, "load", "k3f9a2", 1234567);
    assert_string_equal(id, "load-k3f9a2-00001234567");
    vg_load_format_id(id, "fdbk", "000000", 100000000000ULL + 5);
    assert_string_equal(id, "fdbk-000000-00000000005");
    /* a run's tag: base-36 characters */
    char tag[VG_LOAD_TAG_LEN + 1] = {0};
    vg_load_run_tag(tag);
    assert_int_equal(strspn(tag, "0123456789abcdefghijklmnopqrstuvwxyz"), VG_LOAD_TAG_LEN);
}

static void test_check_feedback(void **state)
{
    (void)state;
    static const char *const classes[] = {"setosa", "versicolor", "virginica"};
    struct vg_answer_spec spec = {"iris", 1, 3, classes};
    static const char *const id = "load-k3f9a2-00000000007";
    static const struct {
        const char *body, *want;
        int ok;
    } cases[] = {
        {"{\"id\":\"load-k3f9a2-00000000007\",\"model\":\"iris\",\"version\":1,"
         "\"outcome\":\"correct\"}",
         "correct", 1},
        {"{\"outcome\":\"incorrect\",\"version\":2,\"model\":\"iris\",\"id\":"
         "\"load-k3f9a2-00000000007\"}",
         "incorrect", 1},
        /* the other outcome, another id, another model, no version, no outcome, garbled */
        {"{\"id\":\"load-k3f9a2-00000000007\",\"model\":\"iris\",\"version\":1,"
         "\"outcome\":\"incorrect\"}",
         "correct", 0},
        {"{\"id\":\"load-k3f9a2-00000000008\",\"model\":\"iris\",\"version\":1,"
         "\"outcome\":\"correct\"}",
         "correct", 0},
        {"{\"id\":\"load-k3f9a2-00000000007\",\"model\":\"rose\",\"version\":1,"
         "\"outcome\":\"correct\"}",
         "correct", 0},
        {"{\"id\":\"load-k3f9a2-00000000007\",\"model\":\"iris\",\"outcome\":\"correct\"}",
         "correct", 0},
        {"{\"id\":\"load-k3f9a2-00000000007\",\"model\":\"iris\",\"version\":1}", "correct", 0},
        {"{\"id\":\"load-k3f9a2-00000000007\",\"model\":\"iris\",\"version\":1,"
         "\"outcome\":true}",
         "correct", 0},
        {"{\"id\":\"load-k3f9a2-00000000007\",\"model\":\"iris\",\"version\":1,"
         "\"outcome\":\"correct\"",
         "correct", 0},
        {"{\"accepted\":1,\"rejected\":0,\"results\":[]}", "correct", 0},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        const char *why = NULL;
        int rc = vg_check_feedback(&spec, cases[i].body, strlen(cases[i].body), id, VG_LOAD_ID_LEN,
                                   cases[i].want, &why);
        if ((rc == 0) != cases[i].ok)
            fail_msg("case %zu: rc %d (%s)", i, rc, why ? why : "-");
        if (rc)
            assert_non_null(why);
    }
    /* the predicted class comes back with the prediction check */
    const char *why = NULL;
    int k = -2;
    const char *answer = "{\"id\":\"load-k3f9a2-00000000007\",\"model\":\"iris\",\"version\":1,"
                         "\"prediction\":\"virginica\",\"probabilities\":{\"setosa\":0,"
                         "\"versicolor\":0.25,\"virginica\":0.75}}";
    assert_int_equal(
        vg_check_prediction_class(&spec, answer, strlen(answer), id, VG_LOAD_ID_LEN, &k, &why), 0);
    assert_int_equal(k, 2);
}

/* --data: valid pools hold one request per row, sent in order; the feedback pool one per class
 * with the prediction id's placeholder in the body. */
static void test_data_pools(void **state)
{
    (void)state;
    static char f0[] = "a", f1[] = "b", c0[] = "no", c1[] = "yes";
    struct vg_feature_dist feats[2] = {{.name = f0, .std = 1, .drift = 1}, {.name = f1, .std = 2}};
    char *classes[2] = {c0, c1};
    struct vg_load_model m = {.name = f0,
                              .classification = 1,
                              .n_features = 2,
                              .features = feats,
                              .n_classes = 2,
                              .classes = classes};
    float x[] = {1.5f, 2, 3, 4.25f, 5, 6};
    int32_t labels[] = {1, 0, 1};
    struct vg_load_data d = {
        .n_rows = 3, .n_features = 2, .x = x, .has_labels = 1, .label_class = labels};
    struct vg_url u;
    char msg[256];
    assert_int_equal(vg_url_parse("http://127.0.0.1:9", &u, msg, sizeof msg), 0);
    struct vg_body_params bp = {.path = "/models/a/predict",
                                .unknown_path = "/models/x/predict",
                                .drift_shift = 2,
                                .pool_valid = 4096,
                                .pool_error = 8,
                                .data = &d};
    struct vg_req_pool pools[VG_KIND_COUNT];
    memset(pools, 0, sizeof pools);
    assert_int_equal(vg_load_build_pools(&m, &u, &bp, pools, msg, sizeof msg), 0);
    assert_int_equal(pools[VG_KIND_NORMAL].n, 3);
    assert_true(pools[VG_KIND_NORMAL].cycle && !pools[VG_KIND_MISSING].cycle);
    for (uint64_t seq = 0; seq < 7; seq++)
        assert_int_equal(vg_req_pool_pick(&pools[VG_KIND_NORMAL], seq), (int)(seq % 3));
    size_t len;
    const char *body = vg_req_pool_body(&pools[VG_KIND_NORMAL], 1, &len);
    assert_int_equal(len, strlen("{\"a\":3,\"b\":4.25}"));
    assert_memory_equal(body, "{\"a\":3,\"b\":4.25}", len);
    body = vg_req_pool_body(&pools[VG_KIND_DRIFT], 2, &len); /* a + 2 * 1 */
    assert_memory_equal(body, "{\"a\":7,\"b\":6}", len);
    struct vg_req_pool fb;
    assert_int_equal(vg_load_build_feedback_pool(&m, &d, &u, "/feedback", &fb, msg, sizeof msg), 0);
    assert_int_equal(fb.n, 2);
    body = vg_req_pool_body(&fb, 1, &len);
    assert_memory_equal(body, "{\"id\":\"load-000000-00000000000\",\"label\":\"yes\"}", len);
    assert_memory_equal(fb.bytes + fb.off[1] + fb.id2_off[1], "load-000000-00000000000",
                        VG_LOAD_ID_LEN);
    assert_memory_equal(fb.bytes + fb.off[1], "POST /feedback HTTP/1.1\r\n", 25);
    vg_req_pool_release(&fb);
    for (int k = 0; k < VG_KIND_COUNT; k++)
        vg_req_pool_release(&pools[k]);
}

static void test_schedule(void **state)
{
    (void)state;
    struct vg_load_plan p = {.scenario = VG_SC_SPIKE,
                             .rate = 2000,
                             .duration_ns = 3000000000LL,
                             .warmup_ns = 500000000LL,
                             .spike_start_ns = 1000000000LL,
                             .spike_len_ns = 1000000000LL,
                             .spike_factor = 3};
    struct vg_schedule s;
    vg_schedule_init(&s, &p);
    assert_int_equal(s.n, 4);
    assert_int_equal(s.warmup_count, 1000);
    assert_int_equal(s.total, 1000 + 2000 + 6000 + 2000);
    int seg, warmup, spike;
    int64_t due;
    assert_int_equal(vg_schedule_due(&s, 0, &seg), 0);
    assert_int_equal(vg_schedule_due(&s, 999, &seg), 499500000);
    assert_int_equal(vg_schedule_due(&s, 1000, &seg), 500000000);
    assert_int_equal(seg, 1);
    /* the spike's first request is due at its start, then every 1/6000 s */
    assert_int_equal(vg_schedule_due(&s, 3000, &seg), 1500000000);
    assert_int_equal(seg, 2);
    assert_true(llabs(vg_schedule_due(&s, 3006, &seg) - 1501000000) <= 1);
    vg_load_request(&p, &s, 10, &due, &warmup, &spike);
    assert_true(warmup && !spike);
    vg_load_request(&p, &s, 5000, &due, &warmup, &spike);
    assert_true(!warmup && spike);
    vg_load_request(&p, &s, 9500, &due, &warmup, &spike);
    assert_true(!warmup && !spike);
    /* times are strictly increasing */
    int64_t prev = -1;
    for (uint64_t i = 0; i < s.total; i++) {
        int64_t t = vg_schedule_due(&s, i, &seg);
        assert_true(t > prev);
        prev = t;
    }
    assert_true(prev < s.end_ns);
    /* a rate and duration whose product is whole gives exactly that many requests */
    struct vg_load_plan q = {.scenario = VG_SC_NORMAL, .rate = 2000, .duration_ns = 2000000000LL};
    vg_schedule_init(&s, &q);
    assert_int_equal(s.total, 4000);
    q.rate = 333.3;
    q.duration_ns = 3000000000LL;
    vg_schedule_init(&s, &q);
    assert_int_equal(s.total, 1000); /* ceil(999.9) */
}

static void test_error_share(void **state)
{
    (void)state;
    struct vg_load_plan p = {.scenario = VG_SC_ERRORS, .error_ratio = 0.2};
    uint64_t per_kind[VG_KIND_COUNT] = {0};
    for (uint64_t m = 0; m < 10000; m++)
        per_kind[vg_load_kind_of(&p, m, 0)]++;
    assert_int_equal(per_kind[VG_KIND_NORMAL], 8000);
    uint64_t errors = 0;
    for (int k = VG_KIND_MALFORMED; k < VG_KIND_MALFORMED + VG_N_ERROR_KINDS; k++) {
        assert_true(per_kind[k] == 333 || per_kind[k] == 334);
        errors += per_kind[k];
    }
    assert_int_equal(errors, 2000);
    /* mixed: drift from drift_start on */
    struct vg_load_plan mixed = {.scenario = VG_SC_MIXED, .error_ratio = 0, .drift_start_ns = 100};
    assert_int_equal(vg_load_kind_of(&mixed, 5, 99), VG_KIND_NORMAL);
    assert_int_equal(vg_load_kind_of(&mixed, 5, 100), VG_KIND_DRIFT);
    p.error_ratio = 1;
    assert_int_equal(vg_load_kind_of(&p, 7, 0), VG_KIND_MALFORMED + 7 % VG_N_ERROR_KINDS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hist_buckets),     cmocka_unit_test(test_hist_percentiles),
        cmocka_unit_test(test_http_parse),       cmocka_unit_test(test_url),
        cmocka_unit_test(test_json_valid),       cmocka_unit_test(test_check_prediction),
        cmocka_unit_test(test_check_error_body), cmocka_unit_test(test_request_id),
        cmocka_unit_test(test_schedule),         cmocka_unit_test(test_error_share),
        cmocka_unit_test(test_check_feedback),   cmocka_unit_test(test_data_pools),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
