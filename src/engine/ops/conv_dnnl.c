/*
 * oneDNN backend for float Conv (Debian's libdnnl 2.x, C API), called from ops/conv.c.
 *
 * Scope: ai.onnx Conv, float32, 2-D (X rank 4), constant W and B (packed by conv.c at load, after
 * BatchNormalization folding), any group, kernel, stride, dilation and pads, with conv.c's fused
 * activation as a post-op: Relu -> eltwise_relu, LeakyRelu -> eltwise_relu(alpha), Clip ->
 * eltwise_clip(lo, hi), HardSwish -> eltwise_hardswish (x * relu6(x + 3) / 6, the ONNX formula with
 * alpha 1/6, beta 0.5). Everything else (1-D, 3-D, non-constant W, ConvTranspose) stays on conv.c's
 * own path, which is also the fallback whenever oneDNN declines a configuration.
 *
 * Choosing the backend: VIGIL_CONV_BACKEND (read once per process)
 *   unset / "auto"  the rule below picks per layer;
 *   "vigil"         oneDNN is never used (conv.c's im2col + OpenBLAS and direct depthwise);
 *   "dnnl"          oneDNN for every 2-D Conv it accepts, the rule ignored (to test this path).
 * The rule (auto), from per-layer timings of every convolution of resnet18, mobilenet_v2,
 * efficientnet_b0 and squeezenet1_1 (bench/engine/conv_backends.c, "any + reorders" against
 * conv.c), each layer paying its own nchw -> blocked -> nchw reorders:
 *  - depthwise-like (C/group == 1, group > 1): conv.c. oneDNN's brdgmm_dw kernel alone is 3-10x
 *    faster, but the two reorders cost more than the whole convolution, and conv.c's direct
 *    kernel works on NCHW in place.
 *  - tiny layers (fewer than DNNL_MIN_MACS multiply-adds, e.g. squeeze-excite 1x1 convs on a
 *    1x1 map): conv.c; oneDNN's fixed per-call cost (memory objects, stream) dominates.
 *  - 1x1 kernels: conv.c's path is one sgemm straight on NCHW, and the reorders cost about what
 *    oneDNN's kernel saves, except on small maps (at most DNNL_1X1_MAX_OS output positions, where
 *    the sgemm's N is too short to be efficient) and very wide layers (Cg * Mg >=
 *    DNNL_1X1_MIN_CM, squeezenet's 512 -> 1000 classifier): oneDNN there.
 *  - every other 2-D Conv (dense 3x3, 5x5, 7x7 stems, strided, dilated, grouped with C/group >
 *    1): oneDNN, 1.3-7x faster per layer than conv.c's im2col + sgemm even with the reorders.
 *
 * Layouts: the engine passes plain NCHW tensors between nodes, so each oneDNN layer reorders X
 * into the primitive's chosen src layout and its dst back to NCHW inside the run (skipped when the
 * primitive chose NCHW itself). Asking for NCHW src/dst directly makes oneDNN fall back to its
 * gemm-based kernels, 4-10x slower than `any` + reorders. Weights are reordered once, at plan
 * time, into the layout the primitive chose, and stay in the node's cache.
 *
 * State and threads: the node state is shared by all sessions and threads. The cache of
 * primitives (one entry per X shape, including "declined" entries) is a singly linked list that
 * only grows: entries are built at plan time (infer) under a mutex and published with a release
 * store, so run looks them up lock-free. Primitives are executed concurrently from several
 * threads; each execution creates its memory objects over the run's own buffers, uses the
 * calling thread's stream (one per thread, freed at thread exit) and a user-mode scratchpad in
 * c->scratch, so nothing mutable is shared. The dnnl engine (cpu, 0) is created once per process.
 * libdnnl is built with OpenMP: every thread that executes sets omp_set_num_threads(1) once, as
 * the engine runs single-threaded per session.
 *
 * Not allocation-free: oneDNN's execute and memory-object creation allocate small objects
 * internally; all data buffers (reordered src/dst, scratchpad) come from c->scratch.
 */
#include "conv_dnnl.h"

#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <oneapi/dnnl/dnnl.h>

#include "op.h"

enum { BK_AUTO, BK_VIGIL, BK_DNNL };

/* Thresholds of the choice rule (see the note at the top). */
#define DNNL_MIN_MACS 65536.0                 /* below: conv.c (call overhead) */
#define DNNL_1X1_MAX_OS 64                  /* output positions: 8x8 and below */
#define DNNL_1X1_MIN_CM ((int64_t)256 * 1024) /* Cg * Mg: very wide layers (512 -> 1000) */

struct entry {
    struct entry *next;
    struct vg_conv_dnnl_shape s;
    dnnl_primitive_t conv, rin, rout; /* conv NULL: declined; rin/rout NULL: layout is NCHW */
    dnnl_memory_desc_t src_md, dst_md, usrc_md, udst_md, scr_md;
    dnnl_memory_t wei, bias;
    size_t off_src, off_dst, off_scr, bytes;
};

struct vg_conv_dnnl {
    pthread_mutex_t lock; /* creation only */
    struct entry *head;   /* published with release stores */
};

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static dnnl_engine_t g_eng;
static int g_mode;
static pthread_key_t g_stream_key;

static void stream_free(void *p)
{
    dnnl_stream_destroy(p);
}

static void global_init(void)
{
    const char *e = getenv("VIGIL_CONV_BACKEND");
    g_mode = !e || !*e || !strcmp(e, "auto") ? BK_AUTO
             : !strcmp(e, "vigil")           ? BK_VIGIL
             : !strcmp(e, "dnnl")            ? BK_DNNL
                                             : BK_AUTO;
    if (g_mode == BK_VIGIL)
        return;
    if (pthread_key_create(&g_stream_key, stream_free) ||
        dnnl_engine_create(&g_eng, dnnl_cpu, 0) != dnnl_success) {
        g_eng = NULL;
        g_mode = BK_VIGIL;
    }
}

/* The calling thread's stream (created on first use, with OpenMP pinned to one thread). */
static dnnl_stream_t thread_stream(void)
{
    dnnl_stream_t s = pthread_getspecific(g_stream_key);
    if (s)
        return s;
    omp_set_num_threads(1);
    if (dnnl_stream_create(&s, g_eng, dnnl_stream_default_flags) != dnnl_success)
        return NULL;
    if (pthread_setspecific(g_stream_key, s)) {
        dnnl_stream_destroy(s);
        return NULL;
    }
    return s;
}

struct vg_conv_dnnl *vg_conv_dnnl_new(void)
{
    pthread_once(&g_once, global_init);
    if (g_mode == BK_VIGIL)
        return NULL;
    struct vg_conv_dnnl *d = calloc(1, sizeof(*d));
    if (d && pthread_mutex_init(&d->lock, NULL)) {
        free(d);
        return NULL;
    }
    return d;
}

static void entry_free(struct entry *e)
{
    if (e->conv)
        dnnl_primitive_destroy(e->conv);
    if (e->rin)
        dnnl_primitive_destroy(e->rin);
    if (e->rout)
        dnnl_primitive_destroy(e->rout);
    if (e->wei)
        dnnl_memory_destroy(e->wei);
    if (e->bias)
        dnnl_memory_destroy(e->bias);
    free(e);
}

void vg_conv_dnnl_free(struct vg_conv_dnnl *d)
{
    if (!d)
        return;
    for (struct entry *e = d->head, *nx; e; e = nx) {
        nx = e->next;
        entry_free(e);
    }
    pthread_mutex_destroy(&d->lock);
    free(d);
}

static const struct entry *find(const struct vg_conv_dnnl *d, const struct vg_conv_dnnl_shape *s)
{
    for (const struct entry *e = __atomic_load_n(&d->head, __ATOMIC_ACQUIRE); e; e = e->next)
        if (!memcmp(&e->s, s, sizeof(*s)))
            return e;
    return NULL;
}

static size_t align64(size_t v)
{
    return (v + 63) & ~(size_t)63;
}

#define OK(call)                                                                                  \
    do {                                                                                          \
        if ((call) != dnnl_success)                                                               \
            goto fail;                                                                            \
    } while (0)

static int reorder_prim(const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to,
                        dnnl_primitive_t *out)
{
    dnnl_primitive_desc_t pd;
    if (dnnl_reorder_primitive_desc_create(&pd, from, g_eng, to, g_eng, NULL) != dnnl_success)
        return -1;
    dnnl_status_t r = dnnl_primitive_create(out, pd);
    dnnl_primitive_desc_destroy(pd);
    return r == dnnl_success ? 0 : -1;
}

/* Builds e's primitives for e->s; 0 on success, -1 when oneDNN declines (e stays declined). */
static int build(struct entry *e, const float *w, const float *bias,
                 const struct vg_conv_act *act)
{
    const struct vg_conv_dnnl_shape *s = &e->s;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_memory_t uwei = NULL;
    dnnl_primitive_t rw = NULL;
    dnnl_stream_t strm = NULL;
    int grouped = s->group > 1;
    int64_t cg = s->c / s->group, mg = s->m / s->group;
    int64_t ph_end = (s->oh - 1) * s->sh + (s->kh - 1) * s->dh + 1 - s->h - s->pt;
    int64_t pw_end = (s->ow - 1) * s->sw + (s->kw - 1) * s->dw + 1 - s->w - s->pl;
    dnnl_dims_t src_dims = {s->n, s->c, s->h, s->w}, dst_dims = {s->n, s->m, s->oh, s->ow};
    dnnl_dims_t wdims = {s->m, cg, s->kh, s->kw}, gwdims = {s->group, mg, cg, s->kh, s->kw};
    dnnl_dims_t bdims = {s->m}, strides = {s->sh, s->sw}, dil = {s->dh - 1, s->dw - 1};
    dnnl_dims_t pad_l = {s->pt, s->pl}, pad_r = {ph_end > 0 ? ph_end : 0, pw_end > 0 ? pw_end : 0};
    dnnl_memory_desc_t src_md, dst_md, wei_md, uwei_md, bias_md;

    /* oneDNN sizes its work split and scratchpad for omp_get_max_threads() at creation: one,
     * as in every executing thread. */
    omp_set_num_threads(1);
    OK(dnnl_memory_desc_init_by_tag(&src_md, 4, src_dims, dnnl_f32, dnnl_format_tag_any));
    OK(dnnl_memory_desc_init_by_tag(&dst_md, 4, dst_dims, dnnl_f32, dnnl_format_tag_any));
    OK(dnnl_memory_desc_init_by_tag(&e->usrc_md, 4, src_dims, dnnl_f32, dnnl_nchw));
    OK(dnnl_memory_desc_init_by_tag(&e->udst_md, 4, dst_dims, dnnl_f32, dnnl_nchw));
    OK(dnnl_memory_desc_init_by_tag(&wei_md, grouped ? 5 : 4, grouped ? gwdims : wdims, dnnl_f32,
                                    dnnl_format_tag_any));
    OK(dnnl_memory_desc_init_by_tag(&uwei_md, grouped ? 5 : 4, grouped ? gwdims : wdims, dnnl_f32,
                                    grouped ? dnnl_goihw : dnnl_oihw));
    OK(dnnl_memory_desc_init_by_tag(&bias_md, 1, bdims, dnnl_f32, dnnl_x));
    dnnl_convolution_desc_t cd;
    OK(dnnl_dilated_convolution_forward_desc_init(&cd, dnnl_forward_inference,
                                                  dnnl_convolution_direct, &src_md, &wei_md,
                                                  bias ? &bias_md : NULL, &dst_md, strides, dil,
                                                  pad_l, pad_r));
    OK(dnnl_primitive_attr_create(&attr));
    OK(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user));
    if (act->kind != VG_CONV_ACT_NONE) {
        OK(dnnl_post_ops_create(&po));
        switch (act->kind) {
        case VG_CONV_ACT_RELU:
            OK(dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f));
            break;
        case VG_CONV_ACT_LEAKY:
            OK(dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, act->a, 0.0f));
            break;
        case VG_CONV_ACT_CLIP:
            OK(dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_clip, act->a, act->b));
            break;
        case VG_CONV_ACT_HARDSWISH:
            OK(dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_hardswish, 0.0f, 0.0f));
            break;
        default:
            goto fail;
        }
        OK(dnnl_primitive_attr_set_post_ops(attr, po));
    }
    OK(dnnl_primitive_desc_create(&pd, &cd, attr, g_eng, NULL));
    const char *impl = NULL;
    /* The reference kernels are far slower than conv.c: leave such shapes to it. */
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) != dnnl_success ||
        !impl || strstr(impl, "ref"))
        goto fail;
    e->src_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
    e->dst_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    e->scr_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    const dnnl_memory_desc_t *pwei = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);

    /* Weights: once, into the primitive's layout. */
    OK(dnnl_memory_create(&e->wei, pwei, g_eng, DNNL_MEMORY_ALLOCATE));
    OK(dnnl_memory_create(&uwei, &uwei_md, g_eng, (void *)w));
    if (reorder_prim(&uwei_md, pwei, &rw))
        goto fail;
    OK(dnnl_stream_create(&strm, g_eng, dnnl_stream_default_flags));
    dnnl_exec_arg_t ra[2] = {{DNNL_ARG_FROM, uwei}, {DNNL_ARG_TO, e->wei}};
    OK(dnnl_primitive_execute(rw, strm, 2, ra));
    OK(dnnl_stream_wait(strm));
    if (bias)
        OK(dnnl_memory_create(&e->bias, &bias_md, g_eng, (void *)bias));

    size_t off = 0;
    if (!dnnl_memory_desc_equal(&e->src_md, &e->usrc_md)) {
        if (reorder_prim(&e->usrc_md, &e->src_md, &e->rin))
            goto fail;
        e->off_src = off;
        off = align64(off + dnnl_memory_desc_get_size(&e->src_md));
    }
    if (!dnnl_memory_desc_equal(&e->dst_md, &e->udst_md)) {
        if (reorder_prim(&e->dst_md, &e->udst_md, &e->rout))
            goto fail;
        e->off_dst = off;
        off = align64(off + dnnl_memory_desc_get_size(&e->dst_md));
    }
    e->off_scr = off;
    off = align64(off + dnnl_memory_desc_get_size(&e->scr_md));
    e->bytes = off ? off : 64;
    OK(dnnl_primitive_create(&e->conv, pd));
    dnnl_primitive_desc_destroy(pd);
    dnnl_primitive_destroy(rw);
    dnnl_memory_destroy(uwei);
    dnnl_stream_destroy(strm);
    dnnl_primitive_attr_destroy(attr);
    if (po)
        dnnl_post_ops_destroy(po);
    return 0;
fail:
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    if (rw)
        dnnl_primitive_destroy(rw);
    if (uwei)
        dnnl_memory_destroy(uwei);
    if (strm)
        dnnl_stream_destroy(strm);
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    if (po)
        dnnl_post_ops_destroy(po);
    struct entry keep = {.next = e->next, .s = e->s};
    if (e->conv)
        dnnl_primitive_destroy(e->conv);
    if (e->rin)
        dnnl_primitive_destroy(e->rin);
    if (e->rout)
        dnnl_primitive_destroy(e->rout);
    if (e->wei)
        dnnl_memory_destroy(e->wei);
    if (e->bias)
        dnnl_memory_destroy(e->bias);
    *e = keep;
    return -1;
}

static int rule_takes(const struct vg_conv_dnnl_shape *s)
{
    if (g_mode == BK_DNNL)
        return 1;
    if (s->group > 1 && s->c / s->group == 1)
        return 0; /* depthwise-like: conv.c's direct kernel */
    if ((double)s->n * (double)(s->m * s->oh * s->ow) * (double)(s->c / s->group * s->kh * s->kw) <
        DNNL_MIN_MACS)
        return 0; /* tiny (squeeze-excite 1x1 on 1x1 maps): oneDNN's per-call cost dominates */
    if (s->kh == 1 && s->kw == 1) /* 1x1: the reorders cost about what oneDNN saves */
        return s->oh * s->ow <= DNNL_1X1_MAX_OS ||
               (s->c / s->group) * (s->m / s->group) >= DNNL_1X1_MIN_CM;
    return 1;
}

size_t vg_conv_dnnl_prepare(struct vg_conv_dnnl *d, const struct vg_conv_dnnl_shape *s,
                            const float *w, const float *bias, const struct vg_conv_act *act)
{
    if (!d || !rule_takes(s))
        return 0;
    const struct entry *f = find(d, s);
    if (f)
        return f->conv ? f->bytes : 0;
    pthread_mutex_lock(&d->lock);
    f = find(d, s);
    if (!f) {
        struct entry *e = calloc(1, sizeof(*e));
        if (e) {
            e->s = *s;
            e->next = d->head;
            build(e, w, bias, act);
            __atomic_store_n(&d->head, e, __ATOMIC_RELEASE);
            f = e;
        }
    }
    pthread_mutex_unlock(&d->lock);
    return f && f->conv ? f->bytes : 0;
}

int vg_conv_dnnl_run(const struct vg_conv_dnnl *d, const struct vg_conv_dnnl_shape *s,
                     const float *x, float *y, void *scratch, size_t scratch_bytes)
{
    const struct entry *e = d ? find(d, s) : NULL;
    if (!e || !e->conv || scratch_bytes < e->bytes || !scratch)
        return 0;
    dnnl_stream_t strm = thread_stream();
    if (!strm)
        return -VG_ENOMEM;
    char *sb = scratch;
    dnnl_memory_t usrc = NULL, udst = NULL, src = NULL, dst = NULL, scr = NULL;
    int rc = -VG_EUNSUPPORTED;
    OK(dnnl_memory_create(&usrc, &e->usrc_md, g_eng, (void *)x));
    OK(dnnl_memory_create(&udst, &e->udst_md, g_eng, y));
    if (e->rin) {
        OK(dnnl_memory_create(&src, &e->src_md, g_eng, sb + e->off_src));
        dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, usrc}, {DNNL_ARG_TO, src}};
        OK(dnnl_primitive_execute(e->rin, strm, 2, a));
    }
    if (e->rout)
        OK(dnnl_memory_create(&dst, &e->dst_md, g_eng, sb + e->off_dst));
    OK(dnnl_memory_create(&scr, &e->scr_md, g_eng, sb + e->off_scr));
    dnnl_exec_arg_t args[5] = {{DNNL_ARG_SRC, src ? src : usrc},
                               {DNNL_ARG_WEIGHTS, e->wei},
                               {DNNL_ARG_DST, dst ? dst : udst},
                               {DNNL_ARG_SCRATCHPAD, scr},
                               {DNNL_ARG_BIAS, e->bias}};
    OK(dnnl_primitive_execute(e->conv, strm, e->bias ? 5 : 4, args));
    if (e->rout) {
        dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, dst}, {DNNL_ARG_TO, udst}};
        OK(dnnl_primitive_execute(e->rout, strm, 2, a));
    }
    OK(dnnl_stream_wait(strm));
    rc = 1;
fail:
    if (usrc)
        dnnl_memory_destroy(usrc);
    if (udst)
        dnnl_memory_destroy(udst);
    if (src)
        dnnl_memory_destroy(src);
    if (dst)
        dnnl_memory_destroy(dst);
    if (scr)
        dnnl_memory_destroy(scr);
    return rc;
}
