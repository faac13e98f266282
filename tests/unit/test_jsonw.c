/*
 * JSON writer tests (src/server/jsonw.c): string escaping (controls, quotes, valid and invalid
 * UTF-8), the UTF-8 decoder, integers, FP32 and FP64 as tables, FP32 and FP64 read back over
 * random bit patterns (and FP32 checked to be the shortest printf text that reads back), the
 * size cap, vg_jw_take and vg_jw_printf, and vg_json_kind.
 */
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "server/jsonw.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* The text a writer holds, NUL-terminated in a static buffer, for comparisons. */
static const char *text(const struct vg_jw *jw)
{
    static char copy[4096];
    assert_false(jw->failed);
    assert_true(jw->len < sizeof copy);
    memcpy(copy, jw->data ? jw->data : "", jw->len);
    copy[jw->len] = 0;
    return copy;
}

static void test_strings(void **state)
{
    (void)state;
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"", "\"\""},
        {"plain text", "\"plain text\""},
        {"say \"hi\" \\o/", "\"say \\\"hi\\\" \\\\o/\""},
        {"/", "\"/\""},
        {"\n\r\t\b\f", "\"\\n\\r\\t\\b\\f\""},
        {"\x01\x02\x1b\x1f", "\"\\u0001\\u0002\\u001b\\u001f\""},
        {"a\x7f"
         "b",
         "\"a\x7f"
         "b\""}, /* DEL is not a control in JSON */
        {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
         "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\""},
        {"\xef\xbf\xbf\xf4\x8f\xbf\xbf", "\"\xef\xbf\xbf\xf4\x8f\xbf\xbf\""}, /* U+FFFF, U+10FFFF */
        {"\xff", "\"\\ufffd\""},
        {"a\x80z", "\"a\\ufffdz\""},                              /* lone continuation byte */
        {"\xc0\xaf", "\"\\ufffd\\ufffd\""},                       /* overlong '/' */
        {"\xe0\x80\xaf", "\"\\ufffd\\ufffd\\ufffd\""},            /* overlong, 3 bytes */
        {"\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\""},            /* surrogate U+D800 */
        {"\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""}, /* U+110000 */
        {"\xf5\x80\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""},
        {"\xe2\x82", "\"\\ufffd\\ufffd\""}, /* cut short by the end */
        {"\xe2\x82x", "\"\\ufffd\\ufffdx\""},
        {"\xc3\n", "\"\\ufffd\\n\""},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        struct vg_jw jw;
        vg_jw_init(&jw, 1024);
        vg_jw_str(&jw, cases[i].in);
        if (strcmp(text(&jw), cases[i].want))
            fail_msg("case %zu: got %s, want %s", i, text(&jw), cases[i].want);
        /* What we write must be JSON that reads back to the (valid) text. */
        cJSON *v = cJSON_Parse(text(&jw));
        assert_non_null(v);
        assert_true(cJSON_IsString(v));
        cJSON_Delete(v);
        vg_jw_release(&jw);
    }
    struct vg_jw jw;
    vg_jw_init(&jw, 64);
    vg_jw_str(&jw, NULL);
    assert_string_equal(text(&jw), "\"\"");
    vg_jw_release(&jw);
}

static void test_utf8_len(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        int want;
    } cases[] = {
        {"", 1},
        {"a", 1},
        {"\x7f", 1},
        {"\xc2\x80", 2},
        {"\xdf\xbf", 2},
        {"\xc1\xbf", 0},
        {"\xc2", 0},
        {"\xe0\xa0\x80", 3},
        {"\xe0\x9f\xbf", 0},
        {"\xed\x9f\xbf", 3},
        {"\xed\xa0\x80", 0},
        {"\xef\xbf\xbf", 3},
        {"\xf0\x90\x80\x80", 4},
        {"\xf0\x8f\xbf\xbf", 0},
        {"\xf4\x8f\xbf\xbf", 4},
        {"\xf4\x90\x80\x80", 0},
        {"\xf8\x88\x80\x80", 0},
        {"\x80", 0},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++)
        if (vg_jw_utf8_len((const unsigned char *)cases[i].s) != cases[i].want)
            fail_msg("case %zu: got %d, want %d", i,
                     vg_jw_utf8_len((const unsigned char *)cases[i].s), cases[i].want);
}

static void test_integers(void **state)
{
    (void)state;
    static const struct {
        int64_t v;
        const char *want;
    } cases[] = {
        {0, "0"},
        {-1, "-1"},
        {42, "42"},
        {INT64_MAX, "9223372036854775807"},
        {INT64_MIN, "-9223372036854775808"},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        struct vg_jw jw;
        vg_jw_init(&jw, 64);
        vg_jw_i64(&jw, cases[i].v);
        assert_string_equal(text(&jw), cases[i].want);
        vg_jw_release(&jw);
    }
}

static void test_f32_table(void **state)
{
    (void)state;
    static const struct {
        float v;
        const char *want;
    } cases[] = {
        {0.1f, "0.1"},
        {0.3f, "0.3"},
        {1.0f / 3, "0.33333334"},
        {2.0f / 3, "0.6666667"},
        {123456.7f, "123456.7"},
        {12345.678f, "12345.678"},
        {-2.5f, "-2.5"},
        {1e-5f, "1e-05"},
        {1e-4f, "0.0001"},
        {9.999999e-5f, "9.999999e-05"},
        {1e-45f, "1e-45"}, /* the smallest subnormal: one digit reads back */
        {FLT_MIN, "1.1754944e-38"},
        {3.4028235e38f, "3.4028235e+38"},
        {1e10f, "1e+10"},
        {0.f, "0"},
        {-0.f, "-0"},
        {1.f, "1"},
        {-7.f, "-7"},
        {1e7f, "10000000"}, /* integral below 2^24: a plain integer */
        {16777215.f, "16777215"},
        {16777216.f, "16777216"}, /* 2^24: %g's shortest, which is also plain */
        {33554432.f, "33554432"},
        {1e8f, "1e+08"},
        /* a * 10^k within rounding error of a tie, where double arithmetic alone picks the other
         * neighbour (which reads back too, but is not the nearest): printf decides */
        {9.3393267e-20f, "9.3393267e-20"},
        {1.01946067e-16f, "1.01946067e-16"},
        {6.2038205e29f, "6.2038205e+29"},
        {-6.2038205e32f, "-6.2038205e+32"},
        {NAN, "null"},
        {INFINITY, "null"},
        {-INFINITY, "null"},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        struct vg_jw jw;
        vg_jw_init(&jw, 64);
        vg_jw_f32(&jw, cases[i].v);
        if (strcmp(text(&jw), cases[i].want))
            fail_msg("case %zu (%.9g): got %s, want %s", i, (double)cases[i].v, text(&jw),
                     cases[i].want);
        vg_jw_release(&jw);
    }
}

static void test_f64_table(void **state)
{
    (void)state;
    static const struct {
        double v;
        const char *want;
    } cases[] = {
        {0.1, "0.1"},
        {1.0 / 3, "0.3333333333333333"},
        {0.1 + 0.2, "0.30000000000000004"},
        {5e-324, "5e-324"},
        {2.2250738585072014e-308, "2.2250738585072014e-308"},
        {DBL_MAX, "1.7976931348623157e+308"},
        {1e15, "1e+15"},
        {123456789012.5, "123456789012.5"},
        {2147483646.0, "2147483646"},
        {-0.0, "-0"},
        {0.0, "0"},
        {NAN, "null"},
        {-INFINITY, "null"},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        struct vg_jw jw;
        vg_jw_init(&jw, 64);
        vg_jw_f64(&jw, cases[i].v);
        if (strcmp(text(&jw), cases[i].want))
            fail_msg("case %zu (%.17g): got %s, want %s", i, cases[i].v, text(&jw), cases[i].want);
        vg_jw_release(&jw);
    }
}

static uint64_t xorshift(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* The shortest "%.<1..9>g" that reads back, laid out as the writer does integers and -0. */
static void shortest_f32(char *dst, float v)
{
    if (v == 0 && signbit(v)) {
        strcpy(dst, "-0");
        return;
    }
    if (fabsf(v) < 16777216.0f && v == (float)(int32_t)v) {
        sprintf(dst, "%" PRId32, (int32_t)v);
        return;
    }
    for (int digits = 1;; digits++) {
        snprintf(dst, 32, "%.*g", digits, (double)v);
        if (digits == 9 || strtof(dst, NULL) == v)
            return;
    }
}

/* Random bit patterns (every class: subnormal, normal, NaN, infinity) written and read back. */
static void test_f32_round_trip(void **state)
{
    (void)state;
    uint64_t seed = 0x9e3779b97f4a7c15u;
    struct vg_jw jw;
    vg_jw_init(&jw, 64);
    for (int i = 0; i < 300000; i++) {
        uint32_t bits = (uint32_t)xorshift(&seed);
        if (i < 1000)
            bits &= 0x807fffffu; /* subnormals too, which random bits rarely give */
        float v;
        memcpy(&v, &bits, sizeof v);
        vg_jw_reset(&jw);
        vg_jw_f32(&jw, v);
        const char *got = text(&jw);
        if (!isfinite(v)) {
            assert_string_equal(got, "null");
            continue;
        }
        float back = strtof(got, NULL);
        uint32_t back_bits;
        memcpy(&back_bits, &back, sizeof back_bits);
        if (back_bits != bits)
            fail_msg("%08" PRIx32 " (%.9g) wrote %s, which reads back as %.9g", bits, (double)v,
                     got, (double)back);
        char want[40];
        shortest_f32(want, v);
        if (strcmp(got, want))
            fail_msg("%08" PRIx32 ": wrote %s, the shortest is %s", bits, got, want);
    }
    vg_jw_release(&jw);
}

static void test_f64_round_trip(void **state)
{
    (void)state;
    uint64_t seed = 0x2545f4914f6cdd1du;
    struct vg_jw jw;
    vg_jw_init(&jw, 64);
    for (int i = 0; i < 200000; i++) {
        uint64_t bits = xorshift(&seed);
        if (i < 1000)
            bits &= 0x800fffffffffffffu;
        double v;
        memcpy(&v, &bits, sizeof v);
        vg_jw_reset(&jw);
        vg_jw_f64(&jw, v);
        const char *got = text(&jw);
        if (!isfinite(v)) {
            assert_string_equal(got, "null");
            continue;
        }
        double back = strtod(got, NULL);
        uint64_t back_bits;
        memcpy(&back_bits, &back, sizeof back_bits);
        if (back_bits != bits)
            fail_msg("%016" PRIx64 " wrote %s, which reads back as %.17g", bits, got, back);
    }
    vg_jw_release(&jw);
}

static void test_cap(void **state)
{
    (void)state;
    struct vg_jw jw;
    size_t len;

    /* Exactly max bytes fit. */
    vg_jw_init(&jw, 10);
    vg_jw_lit(&jw, "0123456789");
    assert_false(jw.failed);
    char *s = vg_jw_take(&jw, &len);
    assert_non_null(s);
    assert_int_equal(len, 10);
    assert_string_equal(s, "0123456789");
    free(s);

    /* One more fails, drops what was written and ignores every later append. */
    vg_jw_lit(&jw, "01234");
    vg_jw_lit(&jw, "56789");
    vg_jw_char(&jw, 'x');
    assert_true(jw.failed);
    assert_null(jw.data);
    assert_int_equal(jw.len, 0);
    assert_int_equal(jw.cap, 0);
    vg_jw_char(&jw, 'y');
    vg_jw_i64(&jw, 1);
    vg_jw_f32(&jw, 1.5f);
    vg_jw_f64(&jw, 1.5);
    vg_jw_str(&jw, "");
    vg_jw_printf(&jw, "%d", 7);
    assert_true(jw.failed);
    assert_int_equal(jw.len, 0);
    assert_null(vg_jw_take(&jw, &len));
    assert_int_equal(len, 0);

    /* Reset makes a failed writer usable again. */
    vg_jw_reset(&jw);
    vg_jw_lit(&jw, "ok");
    assert_string_equal(text(&jw), "ok");
    vg_jw_release(&jw);

    /* A string is reserved at 6 bytes a byte plus its quotes. */
    vg_jw_init(&jw, 20);
    vg_jw_str(&jw, "abc");
    assert_string_equal(text(&jw), "\"abc\"");
    vg_jw_str(&jw, "abc");
    assert_true(jw.failed);
    vg_jw_release(&jw);

    /* A number needs its worst case too: 32 bytes for a float. */
    vg_jw_init(&jw, 31);
    vg_jw_f32(&jw, 0.5f);
    assert_true(jw.failed);
    vg_jw_release(&jw);

    /* A cap of 0 holds the empty text. */
    vg_jw_init(&jw, 0);
    s = vg_jw_take(&jw, &len);
    assert_non_null(s);
    assert_int_equal(len, 0);
    assert_string_equal(s, "");
    free(s);
    vg_jw_char(&jw, 'a');
    assert_true(jw.failed);
    vg_jw_release(&jw);
}

/* Growth past the first allocation keeps every byte, and printf output of any length. */
static void test_growth_and_printf(void **state)
{
    (void)state;
    struct vg_jw jw;
    vg_jw_init(&jw, 1 << 20);
    vg_jw_char(&jw, '[');
    for (int i = 0; i < 10000; i++) {
        if (i)
            vg_jw_char(&jw, ',');
        vg_jw_i64(&jw, i);
    }
    vg_jw_char(&jw, ']');
    vg_jw_printf(&jw, "%s%0500d", ",", 5);
    size_t len;
    char *s = vg_jw_take(&jw, &len);
    assert_non_null(s);
    assert_int_equal(strlen(s), len);
    assert_memory_equal(s, "[0,1,2,", 7);
    assert_memory_equal(s + len - 511, "9998,9999],0000", 15);
    assert_int_equal(s[len - 1], '5');
    assert_null(jw.data); /* take empties the writer */
    assert_int_equal(jw.len, 0);
    free(s);

    vg_jw_printf(&jw, "\"status\":%d,\"ms\":%.3f", 200, 1.25);
    assert_string_equal(text(&jw), "\"status\":200,\"ms\":1.250");
    vg_jw_release(&jw);
}

static void test_json_kind(void **state)
{
    (void)state;
    static const struct {
        const char *json, *want;
    } cases[] = {
        {"\"s\"", "a string"}, {"1.5", "a number"}, {"true", "a boolean"}, {"false", "a boolean"},
        {"null", "null"},      {"[1]", "an array"}, {"{}", "an object"},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        cJSON *v = cJSON_Parse(cases[i].json);
        assert_non_null(v);
        assert_string_equal(vg_json_kind(v), cases[i].want);
        cJSON_Delete(v);
    }
    assert_string_equal(vg_json_kind(NULL), "nothing");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strings),           cmocka_unit_test(test_utf8_len),
        cmocka_unit_test(test_integers),          cmocka_unit_test(test_f32_table),
        cmocka_unit_test(test_f64_table),         cmocka_unit_test(test_f32_round_trip),
        cmocka_unit_test(test_f64_round_trip),    cmocka_unit_test(test_cap),
        cmocka_unit_test(test_growth_and_printf), cmocka_unit_test(test_json_kind),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
