/* Chunked bump allocator: many small allocations freed at once, pointers never move. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct vg_pool_chunk {
    struct vg_pool_chunk *next;
    size_t size, used;
    _Alignas(64) unsigned char data[];
};

#define VG_POOL_MIN_CHUNK (64 * 1024)

/* `align` is a power of two up to 64; chunks start 64-byte aligned. */
static void *pool_alloc_aligned(struct vg_pool *p, size_t n, size_t align)
{
    struct vg_pool_chunk *c = p->head;
    size_t start = c ? (c->used + align - 1) & ~(align - 1) : 0;
    if (!c || start > c->size || c->size - start < n) {
        size_t sz = n > VG_POOL_MIN_CHUNK ? n : VG_POOL_MIN_CHUNK;
        if (c && sz < c->size * 2 && c->size * 2 <= ((size_t)1 << 30))
            sz = c->size * 2;
        if (sz + sizeof(*c) + 63 < sz)
            return NULL;
        c = aligned_alloc(64, (sizeof(*c) + sz + 63) & ~(size_t)63);
        if (!c)
            return NULL;
        c->size = sz;
        c->used = 0;
        c->next = p->head;
        p->head = c;
        p->bytes += sz;
        start = 0;
    }
    void *r = c->data + start;
    c->used = start + n;
    memset(r, 0, n);
    return r;
}

void *vg__pool_alloc(struct vg_pool *p, size_t n)
{
    return pool_alloc_aligned(p, n, 64);
}

char *vg__pool_strndup(struct vg_pool *p, const char *s, size_t len)
{
    char *r = pool_alloc_aligned(p, len + 1, 1); /* strings need no alignment: keep them dense */
    if (r) {
        if (len)
            memcpy(r, s, len);
        r[len] = 0;
    }
    return r;
}

void vg__pool_reset(struct vg_pool *p)
{
    struct vg_pool_chunk *keep = NULL;
    for (struct vg_pool_chunk *c = p->head, *next; c; c = next) {
        next = c->next;
        if (!keep || c->size > keep->size) {
            if (keep)
                free(keep);
            keep = c;
        } else {
            free(c);
        }
    }
    p->head = keep;
    p->bytes = keep ? keep->size : 0;
    if (keep) {
        keep->next = NULL;
        keep->used = 0;
    }
}

void vg__pool_release(struct vg_pool *p)
{
    for (struct vg_pool_chunk *c = p->head, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    p->head = NULL;
    p->bytes = 0;
}
