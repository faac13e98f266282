/*
 * Exact 8-bit integer GEMM (internal to the engine; see qgemm.c for the design note).
 *
 *   C[m][n] = bias[m] + sum_k (A[m][k] - za[m]) * (B[k][n] - zb[n])      (int32, wrapping)
 *
 * A (M x K) and B (K x N) are uint8 or int8 each, zero points per tensor, per row of A or per
 * column of B. C is stored as int32, or requantized to uint8/int8 per row or per column:
 *
 *   y = saturate(round_half_to_even(C * M) + y_zero_point),   M = mult / 2^shift
 *
 * Both operands are packed first (a layout that depends on the kernel path); a constant operand
 * (weights) is packed once at load, with its row or column sums. Every path gives bit-identical
 * results: tests/unit/test_qgemm.c forces each one against a plain reference.
 */
#ifndef VIGIL_ENGINE_QGEMM_H
#define VIGIL_ENGINE_QGEMM_H

#include <stddef.h>
#include <stdint.h>

enum vg_qgemm_path {
    VG_QGEMM_PORTABLE = 0, /* plain C */
    VG_QGEMM_AVX2 = 1,     /* widen to int16, vpmaddwd */
    VG_QGEMM_AVXVNNI = 2,  /* VEX vpdpbusd on ymm */
    VG_QGEMM_AVX512 = 3,   /* AVX512-VNNI vpdpbusd on zmm */
    VG_QGEMM_NPATHS
};

/* Whether this CPU can run `path`. */
int vg_qgemm_path_supported(int path);
/* Path used for packs made from now on: the best supported one unless forced (tests). */
int vg_qgemm_path(void);
/* Forces a path (must be supported), or -1 to go back to the best one. Not for production. */
void vg_qgemm_force_path(int path);
const char *vg_qgemm_path_name(int path);

/* A packed: rows in panels of MR, K in groups of 4, values in the signed (int8) domain. */
struct vg_qgemm_pa {
    int path, m, k, k4; /* k4 = ceil(k / 4) */
    int a_signed;       /* source dtype: int8 (1) or uint8 (0) */
    int32_t *rowsum;    /* m sums of the packed (signed-domain) values of each row */
    void *data;
};

/* B packed: columns in panels of NR, K in groups of 4, values in the unsigned (uint8) domain. */
struct vg_qgemm_pb {
    int path, k, n, k4;
    int b_signed;
    int32_t *colsum; /* n sums of the packed (unsigned-domain) values, or NULL if not asked */
    uint8_t *data;
};

/* Bytes `mem` needs for a pack (includes the sums; `mem` must be 64-byte aligned). */
size_t vg_qgemm_pack_a_bytes(int path, int m, int k);
size_t vg_qgemm_pack_b_bytes(int path, int k, int n);
/* A is m x k, row stride lda elements. */
void vg_qgemm_pack_a(int path, const void *a, int a_signed, size_t lda, int m, int k, void *mem,
                     struct vg_qgemm_pa *pa);
/* B is k x n, row stride ldb elements. Column sums are only needed when za is not 0 in the
 * signed domain (za - 128 for uint8 A, za for int8 A); with_colsum = 0 skips them. */
void vg_qgemm_pack_b(int path, const void *b, int b_signed, size_t ldb, int k, int n,
                     int with_colsum, void *mem, struct vg_qgemm_pb *pb);
/* The sub-block of packed B holding columns [n0, n0 + n); n0 must be a multiple of
 * vg_qgemm_nr(pb->path). */
void vg_qgemm_pb_cols(const struct vg_qgemm_pb *pb, int n0, int n, struct vg_qgemm_pb *sub);
int vg_qgemm_nr(int path);

/* Requantization: y = round_half_even(acc * mult / 2^shift), mult in [0, 2^31), shift in
 * [1, 62]. vg_qgemm_requant_param derives them from a positive finite multiplier. */
struct vg_qgemm_rq {
    int32_t mult;
    int32_t shift;
};
void vg_qgemm_requant_param(double multiplier, struct vg_qgemm_rq *rq);

enum vg_qgemm_out_kind { VG_QGEMM_OUT_I32, VG_QGEMM_OUT_U8, VG_QGEMM_OUT_S8 };

struct vg_qgemm_out {
    const int32_t *za; /* A zero points in A's own dtype range; NULL = 0 */
    int za_per_row;    /* za has m entries (else one) */
    const int32_t *zb; /* B zero points; NULL = 0 */
    int zb_per_col;    /* zb has n entries (else one) */
    const int32_t *bias; /* NULL or m entries, added to the exact sum */
    enum vg_qgemm_out_kind kind;
    void *y;    /* row-major, ldy elements per row */
    size_t ldy;
    const struct vg_qgemm_rq *rq; /* u8/s8 output: one entry, or per row / per column */
    int rq_per_row, rq_per_col;
    int32_t y_zp;
};

/* C = A x B with the output stage. a and b must be packed with the same path. */
void vg_qgemm(const struct vg_qgemm_pa *a, const struct vg_qgemm_pb *b,
              const struct vg_qgemm_out *o);

/* y[i] = saturate(round_half_even(acc[i] * rq) + zp) for n values (u8 or s8 kind). */
void vg_qgemm_requant_row(const int32_t *acc, int n, const struct vg_qgemm_rq *rq, int32_t zp,
                          enum vg_qgemm_out_kind kind, void *y);

#endif
