/*
 * image_url: fetching an image with libcurl, under rules that keep the server from being used to
 * reach what only it can reach (server-side request forgery). docs/image-models.md, "image_url".
 *
 * - http and https only (CURLOPT_PROTOCOLS_STR), on the first URL and on every redirect.
 * - Redirects are followed here, not by libcurl: at most max_redirects, each hop a new transfer
 *   whose URL is checked again, all within one total time budget.
 * - The address check happens in CURLOPT_OPENSOCKETFUNCTION, which libcurl calls with the very
 *   address it is about to connect to, after its own DNS resolution: what is checked is what is
 *   connected to, so a name that resolves to a public address for a check and to a private one
 *   for the connection (DNS rebinding) gains nothing. Refused addresses get no socket, so no
 *   packet is sent to them. Proxies from the environment are disabled (CURLOPT_PROXY ""), or the
 *   check would see the proxy's address instead of the target's.
 * - Refused unless an --image-url-allow network holds them: IPv4 0/8, 10/8, 100.64/10, 127/8,
 *   169.254/16, 172.16/12, 192.0.0/24, 192.0.2/24, 192.88.99/24, 192.168/16, 198.18/15,
 *   198.51.100/24, 203.0.113/24, 224/4 (multicast), 240/4 and broadcast; IPv6 ::, ::1, the rest of
 *   ::/8, 100::/64, 2001::/23 (Teredo included), 2001:db8::/32, fc00::/7, fe80::/10, fec0::/10,
 *   ff00::/8, and IPv4 addresses carried in IPv6 (::ffff:0:0/96 mapped, 64:ff9b::/96 NAT64,
 *   2002::/16 6to4) by the IPv4 rules.
 * - Size: a Content-Length above max_bytes stops the transfer before the body
 *   (CURLOPT_MAXFILESIZE_LARGE); a body that grows past it is cut off by the write callback.
 * - Time: connect timeout per connection, and one total deadline for all hops.
 *
 * The fetch runs on the worker thread that handles the request (the easy interface, one handle
 * per request): a slow image server holds one worker for at most the total timeout.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "server/server.h"

/* ---- Address rules --------------------------------------------------------------------------- */

static const char *v4_reason(const unsigned char a[4])
{
    uint32_t x = (uint32_t)a[0] << 24 | (uint32_t)a[1] << 16 | (uint32_t)a[2] << 8 | a[3];
    static const struct {
        uint32_t net;
        int bits;
        const char *why;
    } rules[] = {
        {0x00000000u, 8, "an unspecified ('this network') address"},
        {0x0a000000u, 8, "a private address"},
        {0x64400000u, 10, "a shared (carrier-grade NAT) address"},
        {0x7f000000u, 8, "a loopback address"},
        {0xa9fe0000u, 16, "a link-local address"},
        {0xac100000u, 12, "a private address"},
        {0xc0000000u, 24, "a reserved address"},
        {0xc0000200u, 24, "a reserved (documentation) address"},
        {0xc0586300u, 24, "a reserved address"},
        {0xc0a80000u, 16, "a private address"},
        {0xc6120000u, 15, "a reserved (benchmarking) address"},
        {0xc6336400u, 24, "a reserved (documentation) address"},
        {0xcb007100u, 24, "a reserved (documentation) address"},
        {0xe0000000u, 4, "a multicast address"},
        {0xf0000000u, 4, "a reserved address"},
    };
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
        uint32_t mask = rules[i].bits ? 0xffffffffu << (32 - rules[i].bits) : 0;
        if ((x & mask) == rules[i].net)
            return rules[i].why;
    }
    return NULL;
}

static int prefix_match(const unsigned char *a, const unsigned char *net, int bits)
{
    int full = bits / 8, rest = bits % 8;
    if (memcmp(a, net, (size_t)full))
        return 0;
    if (!rest)
        return 1;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (a[full] & mask) == (net[full] & mask);
}

static int allowed(int family, const unsigned char *a, const struct vg_cidr *allow, int n)
{
    for (int i = 0; i < n; i++)
        if (allow[i].family == family && prefix_match(a, allow[i].addr, allow[i].prefix))
            return 1;
    return 0;
}

const char *vg_addr_forbidden(const struct sockaddr *sa, const struct vg_cidr *allow, int n_allow)
{
    if (sa->sa_family == AF_INET) {
        const unsigned char *a = (const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr;
        if (allowed(AF_INET, a, allow, n_allow))
            return NULL;
        return v4_reason(a);
    }
    if (sa->sa_family != AF_INET6)
        return "not an IP address";
    const unsigned char *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
    if (allowed(AF_INET6, a, allow, n_allow))
        return NULL;
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const unsigned char nat64[12] = {0, 0x64, 0xff, 0x9b};
    const unsigned char *v4 = NULL;
    if (!memcmp(a, mapped, 12) || !memcmp(a, nat64, 12))
        v4 = a + 12;
    else if (a[0] == 0x20 && a[1] == 0x02)
        v4 = a + 2;
    if (v4)
        return allowed(AF_INET, v4, allow, n_allow) ? NULL : v4_reason(v4);
    static const unsigned char zero[16] = {0};
    if (!memcmp(a, zero, 16))
        return "an unspecified address";
    if (!memcmp(a, zero, 15) && a[15] == 1)
        return "a loopback address";
    static const struct {
        unsigned char net[4];
        int bits;
        const char *why;
    } rules[] = {
        {{0x00, 0x00}, 8, "a reserved address"},
        {{0x01, 0x00, 0x00, 0x00}, 32, "a reserved (discard) address"}, /* 100::/64 (first 32) */
        {{0x00, 0x64, 0xff, 0x9b}, 32, "a reserved (NAT64) address"},   /* 64:ff9b:1::/48 */
        {{0x20, 0x01, 0x0d, 0xb8}, 32, "a reserved (documentation) address"},
        {{0x20, 0x01, 0x00, 0x00}, 23, "a reserved address"},
        {{0xfc, 0x00}, 7, "a private (unique local) address"},
        {{0xfe, 0x80}, 10, "a link-local address"},
        {{0xfe, 0xc0}, 10, "a private (site-local) address"},
        {{0xff, 0x00}, 8, "a multicast address"},
    };
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++)
        if (prefix_match(a, rules[i].net, rules[i].bits))
            return rules[i].why;
    return NULL;
}

int vg_cidr_parse_list(const char *text, struct vg_cidr **out, int *n, char *msg, size_t size)
{
    *out = NULL;
    *n = 0;
    if (!text || !*text)
        return 0;
    int cap = 1;
    for (const char *p = text; *p; p++)
        cap += *p == ',';
    struct vg_cidr *v = calloc((size_t)cap, sizeof *v);
    if (!v) {
        snprintf(msg, size, "out of memory");
        return -1;
    }
    const char *p = text;
    int count = 0;
    while (*p) {
        const char *end = strchrnul(p, ',');
        const char *b = p, *e = end;
        while (b < e && (*b == ' ' || *b == '\t'))
            b++;
        while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        char item[80];
        if (e - b <= 0 || (size_t)(e - b) >= sizeof item) {
            snprintf(msg, size, "'%.*s' is not a network (CIDR such as 10.0.0.0/8 or fd00::/8)",
                     (int)(end - p), p);
            free(v);
            return -1;
        }
        memcpy(item, b, (size_t)(e - b));
        item[e - b] = 0;
        char *slash = strchr(item, '/');
        int prefix = -1;
        if (slash) {
            *slash = 0;
            char *pe;
            long pl = strtol(slash + 1, &pe, 10);
            if (!slash[1] || *pe || pl < 0 || pl > 128)
                goto bad;
            prefix = (int)pl;
        }
        struct vg_cidr *c = &v[count];
        if (inet_pton(AF_INET, item, c->addr) == 1) {
            c->family = AF_INET;
            if (prefix < 0)
                prefix = 32;
            if (prefix > 32)
                goto bad;
        } else if (inet_pton(AF_INET6, item, c->addr) == 1) {
            c->family = AF_INET6;
            if (prefix < 0)
                prefix = 128;
        } else {
            goto bad;
        }
        c->prefix = prefix;
        count++;
        p = *end ? end + 1 : end;
        continue;
    bad:
        snprintf(msg, size, "'%.*s' is not a network (CIDR such as 10.0.0.0/8 or fd00::/8)",
                 (int)(end - p), p);
        free(v);
        return -1;
    }
    *out = v;
    *n = count;
    return 0;
}

/* ---- The transfer ---------------------------------------------------------------------------- */

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_rc;

static void global_init(void)
{
    init_rc = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

int vg_fetch_global_init(void)
{
    pthread_once(&init_once, global_init);
    return init_rc;
}

struct fetch_ctx {
    const struct vg_fetch_opts *o;
    unsigned char *buf;
    size_t len, cap;
    int too_large;
    char refused[200]; /* the first refused address and why */
};

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct fetch_ctx *c = userdata;
    size_t n = size * nmemb;
    if (n > c->o->max_bytes - c->len) {
        c->too_large = 1;
        return 0; /* CURLE_WRITE_ERROR: the transfer stops */
    }
    if (c->len + n > c->cap) {
        size_t cap = c->cap ? c->cap : 65536;
        while (cap < c->len + n)
            cap *= 2;
        if (cap > c->o->max_bytes)
            cap = c->o->max_bytes;
        unsigned char *p = realloc(c->buf, cap);
        if (!p)
            return 0;
        c->buf = p;
        c->cap = cap;
    }
    memcpy(c->buf + c->len, ptr, n);
    c->len += n;
    return n;
}

static curl_socket_t on_open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *a)
{
    struct fetch_ctx *c = clientp;
    const char *why = vg_addr_forbidden(&a->addr, c->o->allow, c->o->n_allow);
    if (purpose == CURLSOCKTYPE_IPCXN && why) {
        if (!c->refused[0]) {
            char text[INET6_ADDRSTRLEN] = "?";
            if (a->family == AF_INET)
                inet_ntop(AF_INET, &((struct sockaddr_in *)&a->addr)->sin_addr, text, sizeof text);
            else if (a->family == AF_INET6)
                inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&a->addr)->sin6_addr, text,
                          sizeof text);
            snprintf(c->refused, sizeof c->refused, "%s is %s", text, why);
        }
        return CURL_SOCKET_BAD;
    }
    return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

/* "http" or "https" scheme check with libcurl's own URL parser. */
static int check_url(const char *url, char *msg, size_t size, int hop)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL;
    int rc = -1;
    if (!u) {
        snprintf(msg, size, "out of memory");
        return -1;
    }
    CURLUcode uc = curl_url_set(u, CURLUPART_URL, url, 0);
    if (uc == CURLUE_OK)
        uc = curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
    if (uc == CURLUE_OK)
        uc = curl_url_get(u, CURLUPART_HOST, &host, 0);
    if (uc != CURLUE_OK)
        snprintf(msg, size, "%s '%.200s' is not a valid absolute URL (%s)",
                 hop ? "the redirect to" : "image_url", url, curl_url_strerror(uc));
    else if (strcasecmp(scheme, "http") && strcasecmp(scheme, "https"))
        snprintf(msg, size, "%s uses the scheme '%.20s': only http and https are fetched",
                 hop ? "a redirect" : "image_url", scheme);
    else
        rc = 0;
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return rc;
}

int vg_fetch(const char *url, const struct vg_fetch_opts *o, unsigned char **data, size_t *len,
             char *msg, size_t size)
{
    *data = NULL;
    *len = 0;
    if (vg_fetch_global_init()) {
        snprintf(msg, size, "libcurl could not be initialised");
        return VG_FETCH_FAILED;
    }
    struct fetch_ctx c = {.o = o};
    char errbuf[CURL_ERROR_SIZE];
    char *cur = strdup(url);
    CURL *h = curl_easy_init();
    int status = VG_FETCH_FAILED;
    if (!cur || !h) {
        snprintf(msg, size, "out of memory");
        status = VG_FETCH_NOMEM;
        goto out;
    }
    double deadline = now_ms() + (double)o->timeout_ms;
    for (int hop = 0;; hop++) {
        if (check_url(cur, msg, size, hop)) {
            status = VG_FETCH_BAD_URL;
            goto out;
        }
        double left = deadline - now_ms();
        if (left < 1) {
            snprintf(msg, size, "fetching image_url took longer than %ld ms", o->timeout_ms);
            status = VG_FETCH_TIMEOUT;
            goto out;
        }
        c.len = 0;
        c.too_large = 0;
        errbuf[0] = 0;
        curl_easy_reset(h);
        curl_easy_setopt(h, CURLOPT_URL, cur);
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_PROXY, "");
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, o->connect_timeout_ms);
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)left);
        curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)o->max_bytes);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &c);
        curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
        curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, &c);
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
        curl_easy_setopt(h, CURLOPT_USERAGENT, "vigil/" VG_VERSION);
        curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, NULL);
        CURLcode cc = curl_easy_perform(h);
        if (cc != CURLE_OK) {
            if (c.refused[0]) {
                snprintf(msg, size,
                         "image_url refused: %s (only public addresses are fetched; see "
                         "--image-url-allow)",
                         c.refused);
                status = VG_FETCH_FORBIDDEN;
            } else if (c.too_large || cc == CURLE_FILESIZE_EXCEEDED) {
                snprintf(msg, size,
                         "the image at image_url is larger than %zu bytes "
                         "(--image-url-max-bytes)",
                         o->max_bytes);
                status = VG_FETCH_TOO_LARGE;
            } else if (cc == CURLE_OPERATION_TIMEDOUT) {
                snprintf(msg, size, "fetching image_url timed out (%s)",
                         errbuf[0] ? errbuf : curl_easy_strerror(cc));
                status = VG_FETCH_TIMEOUT;
            } else if (cc == CURLE_UNSUPPORTED_PROTOCOL || cc == CURLE_URL_MALFORMAT) {
                snprintf(msg, size, "image_url cannot be fetched: %s",
                         errbuf[0] ? errbuf : curl_easy_strerror(cc));
                status = VG_FETCH_BAD_URL;
            } else {
                snprintf(msg, size, "fetching image_url failed: %s",
                         errbuf[0] ? errbuf : curl_easy_strerror(cc));
                status = VG_FETCH_FAILED;
            }
            goto out;
        }
        long code = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
        char *location = NULL;
        curl_easy_getinfo(h, CURLINFO_REDIRECT_URL, &location);
        if (code >= 300 && code < 400 && location) {
            if (hop >= o->max_redirects) {
                snprintf(msg, size,
                         "fetching image_url failed: more than %d redirect%s "
                         "(--image-url-max-redirects)",
                         o->max_redirects, o->max_redirects == 1 ? "" : "s");
                status = VG_FETCH_FAILED;
                goto out;
            }
            char *next = strdup(location); /* location belongs to the handle */
            if (!next) {
                snprintf(msg, size, "out of memory");
                status = VG_FETCH_NOMEM;
                goto out;
            }
            free(cur);
            cur = next;
            continue;
        }
        if (code != 200) {
            snprintf(msg, size, "fetching image_url failed: the server answered HTTP %ld", code);
            status = VG_FETCH_FAILED;
            goto out;
        }
        *data = c.buf;
        *len = c.len;
        c.buf = NULL;
        status = VG_FETCH_OK;
        break;
    }
out:
    free(c.buf);
    free(cur);
    if (h)
        curl_easy_cleanup(h);
    return status;
}
