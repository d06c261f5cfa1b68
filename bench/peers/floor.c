/* The kernel's floor for fan-out: a minimal WebSocket broadcast server in C.
 *
 *     cc -O2 -o floor floor.c && ./floor PORT [DROPS_FILE]
 *
 * It speaks what bench/dialects.py's PlainDialect expects of the aiohttp/ws peers: a text
 * message starting with "E" is echoed, "S<room>" joins a room (answered "ok"),
 * "R<room> <body>" goes to the room's members, anything else to every connection.
 *
 * One thread, epoll, nonblocking sockets with TCP_NODELAY. For each publication the
 * server frame (unmasked, final, text) is built once and written with one write() per
 * subscriber socket: no coalescing, no queue. A subscriber whose write fails or is short
 * is dropped (closed) and counted; the count is written to DROPS_FILE whenever it
 * changes. That is all the work a server must do per delivery without coalescing; what a
 * real server spends above it is its own.
 *
 * Handshake: Sec-WebSocket-Accept is base64(SHA-1(key + GUID)) (RFC 6455 4.2.2), both
 * written out below (SHA-1: FIPS 180-4), so that nothing but libc is needed.
 * Not implemented (the load generator sends none of it): fragmented messages, extensions,
 * subprotocols, UTF-8 validation, closing handshakes beyond closing the socket.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_MESSAGE (1u << 20)
#define MAX_HEAD 8192
#define MAX_ROOMS 65536 /* open addressing; the bench uses 1,000 */

/* -- SHA-1 and base64 -------------------------------------------------------------- */

static uint32_t rol(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

static void sha1_block(uint32_t h[5], const unsigned char *p) {
    uint32_t w[80], a, b, c, d, e, f, k, t;
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 80; i++) w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; i++) {
        if (i < 20) f = (b & c) | (~b & d), k = 0x5A827999;
        else if (i < 40) f = b ^ c ^ d, k = 0x6ED9EBA1;
        else if (i < 60) f = (b & c) | (b & d) | (c & d), k = 0x8F1BBCDC;
        else f = b ^ c ^ d, k = 0xCA62C1D6;
        t = rol(a, 5) + f + e + k + w[i];
        e = d, d = c, c = rol(b, 30), b = a, a = t;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
}

static void sha1(const unsigned char *data, size_t len, unsigned char out[20]) {
    uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    unsigned char block[64];
    size_t i = 0;
    for (; i + 64 <= len; i += 64) sha1_block(h, data + i);
    size_t rest = len - i;
    memset(block, 0, 64);
    memcpy(block, data + i, rest);
    block[rest] = 0x80;
    if (rest >= 56) {
        sha1_block(h, block);
        memset(block, 0, 64);
    }
    uint64_t bits = (uint64_t)len * 8;
    for (int j = 0; j < 8; j++) block[63 - j] = (unsigned char)(bits >> (8 * j));
    sha1_block(h, block);
    for (int j = 0; j < 5; j++)
        for (int b = 0; b < 4; b++) out[4 * j + b] = (unsigned char)(h[j] >> (24 - 8 * b));
}

static size_t base64(const unsigned char *in, size_t len, char *out) {
    static const char abc[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len) v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len) v |= in[i + 2];
        out[o++] = abc[(v >> 18) & 63];
        out[o++] = abc[(v >> 12) & 63];
        out[o++] = i + 1 < len ? abc[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? abc[v & 63] : '=';
    }
    out[o] = 0;
    return o;
}

/* -- connections and rooms ---------------------------------------------------------- */

typedef struct Conn {
    int fd;
    int open;             /* the handshake is done */
    int dead;             /* dropped: closed, freed once the current epoll batch is done */
    int index;            /* in `all` */
    unsigned char *buf;   /* unread input */
    size_t len, cap;
    int *rooms;           /* rooms joined (indices into `rooms`) */
    int nrooms, caprooms;
} Conn;

typedef struct Room {
    char *name;
    Conn **members;
    int n, cap;
} Room;

static Conn **all;
static int nall, capall;
static Room rooms[MAX_ROOMS];
static long drops;
static const char *drops_file;
static int ep;
static Conn **graveyard; /* dropped in this epoll batch, which may still name them */
static int ngraveyard, capgraveyard;
static unsigned char *frame; /* the frame being written, built once per message */
static size_t framecap;

static void write_drops(void) {
    if (!drops_file) return;
    FILE *f = fopen(drops_file, "w");
    if (f) {
        fprintf(f, "%ld\n", drops);
        fclose(f);
    }
}

static void note_drop(void) {
    drops++;
    write_drops();
}

static uint32_t hash(const char *s, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

/* The room called s[0:n] (created when `create`), or -1. */
static int room_of(const char *s, size_t n, int create) {
    for (uint32_t i = hash(s, n) % MAX_ROOMS, k = 0; k < MAX_ROOMS; i = (i + 1) % MAX_ROOMS, k++) {
        if (!rooms[i].name) {
            if (!create) return -1;
            rooms[i].name = strndup(s, n);
            return (int)i;
        }
        if (strlen(rooms[i].name) == n && memcmp(rooms[i].name, s, n) == 0) return (int)i;
    }
    return -1;
}

static void *grow(void *p, int *cap, int need, size_t size) {
    if (need <= *cap) return p;
    *cap = *cap ? *cap * 2 : 8;
    if (*cap < need) *cap = need;
    p = realloc(p, (size_t)*cap * size);
    if (!p) abort();
    return p;
}

static void drop(Conn *c) {
    for (int r = 0; r < c->nrooms; r++) {
        Room *room = &rooms[c->rooms[r]];
        for (int m = 0; m < room->n; m++)
            if (room->members[m] == c) {
                room->members[m] = room->members[--room->n];
                break;
            }
    }
    all[c->index] = all[--nall];
    all[c->index]->index = c->index;
    close(c->fd); /* also leaves the epoll set */
    c->dead = 1;
    graveyard = grow(graveyard, &capgraveyard, ngraveyard + 1, sizeof *graveyard);
    graveyard[ngraveyard++] = c;
}

/* A server frame of `payload` in `frame`; returns its length. */
static size_t build(const unsigned char *payload, size_t n) {
    if (framecap < n + 10) {
        framecap = n + 10;
        frame = realloc(frame, framecap);
        if (!frame) abort();
    }
    size_t head;
    frame[0] = 0x81;
    if (n < 126) frame[1] = (unsigned char)n, head = 2;
    else if (n < 65536) frame[1] = 126, frame[2] = (unsigned char)(n >> 8), frame[3] = (unsigned char)n, head = 4;
    else {
        frame[1] = 127;
        for (int i = 0; i < 8; i++) frame[2 + i] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
        head = 10;
    }
    memcpy(frame + head, payload, n);
    return head + n;
}

/* One write of frame[0:n] to each of `to`; a failed or short write drops the connection
 * (after the loop: dropping reorders `to`). Returns 0 when `self`, the sender, was among
 * those that failed (its caller drops it). */
static int send_all(Conn **to, int count, size_t n, Conn *self) {
    int self_ok = 1;
    static Conn **doomed;
    static int capdoomed;
    int ndoomed = 0;
    for (int i = 0; i < count; i++) {
        ssize_t w = write(to[i]->fd, frame, n);
        if (w != (ssize_t)n) {
            doomed = grow(doomed, &capdoomed, ndoomed + 1, sizeof *doomed);
            doomed[ndoomed++] = to[i];
        }
    }
    for (int i = 0; i < ndoomed; i++) {
        note_drop();
        if (doomed[i] == self) self_ok = 0;
        else drop(doomed[i]);
    }
    return self_ok;
}

/* Handle one text message; returns 0 when `c` must be closed. */
static int message(Conn *c, unsigned char *p, size_t n) {
    if (n >= 1 && p[0] == 'E') {
        size_t len = build(p, n);
        return write(c->fd, frame, len) == (ssize_t)len ? 1 : (note_drop(), 0);
    }
    if (n >= 1 && p[0] == 'S') {
        int r = room_of((char *)p + 1, n - 1, 1);
        if (r < 0) return 0;
        Room *room = &rooms[r];
        room->members = grow(room->members, &room->cap, room->n + 1, sizeof(Conn *));
        room->members[room->n++] = c;
        c->rooms = grow(c->rooms, &c->caprooms, c->nrooms + 1, sizeof(int));
        c->rooms[c->nrooms++] = r;
        size_t len = build((const unsigned char *)"ok", 2);
        return write(c->fd, frame, len) == (ssize_t)len ? 1 : (note_drop(), 0);
    }
    if (n >= 1 && p[0] == 'R') {
        unsigned char *space = memchr(p + 1, ' ', n - 1);
        if (!space) return 1;
        int r = room_of((char *)p + 1, (size_t)(space - p - 1), 0);
        if (r < 0) return 1;
        size_t len = build(space + 1, n - (size_t)(space + 1 - p));
        return send_all(rooms[r].members, rooms[r].n, len, c);
    }
    size_t len = build(p, n);
    return send_all(all, nall, len, c);
}

/* Parse whole client frames out of c->buf; returns 0 when `c` must be closed. */
static int frames(Conn *c) {
    size_t pos = 0;
    int keep = 1;
    while (keep && c->len - pos >= 2) {
        unsigned char *b = c->buf + pos;
        size_t avail = c->len - pos, n = b[1] & 0x7F, head = 2;
        if (!(b[1] & 0x80)) return 0; /* clients must mask */
        if (n == 126) {
            if (avail < 4) break;
            n = (size_t)b[2] << 8 | b[3], head = 4;
        } else if (n == 127) {
            if (avail < 10) break;
            n = 0;
            for (int i = 0; i < 8; i++) n = n << 8 | b[2 + i];
            head = 10;
        }
        if (n > MAX_MESSAGE) return 0;
        if (avail < head + 4 + n) break;
        unsigned char *mask = b + head, *p = b + head + 4;
        for (size_t i = 0; i < n; i++) p[i] ^= mask[i & 3];
        int opcode = b[0] & 0x0F;
        if (opcode == 1 || opcode == 2) keep = message(c, p, n);
        else if (opcode == 8) keep = 0;
        else if (opcode == 9 && n <= 125) {
            unsigned char pong[127] = {0x8A, (unsigned char)n};
            memcpy(pong + 2, p, n);
            keep = write(c->fd, pong, n + 2) == (ssize_t)(n + 2);
        }
        pos += head + 4 + n;
    }
    memmove(c->buf, c->buf + pos, c->len - pos);
    c->len -= pos;
    return keep;
}

/* The upgrade request is in c->buf up to `end`: answer it; returns 0 to close. */
static int handshake(Conn *c, size_t end) {
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    char *req = (char *)c->buf, *key = NULL;
    c->buf[end] = 0;
    for (char *line = strstr(req, "\r\n"); line && line < req + end; line = strstr(line + 2, "\r\n"))
        if (strncasecmp(line + 2, "Sec-WebSocket-Key:", 18) == 0) {
            key = line + 20;
            break;
        }
    if (!key) return 0;
    while (*key == ' ') key++;
    size_t klen = strcspn(key, " \r\n");
    if (klen > 64) return 0;
    unsigned char joined[128], digest[20];
    memcpy(joined, key, klen);
    memcpy(joined + klen, guid, sizeof guid - 1);
    sha1(joined, klen + sizeof guid - 1, digest);
    char accept[32], out[256];
    base64(digest, 20, accept);
    int len = snprintf(out, sizeof out,
                       "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", accept);
    if (write(c->fd, out, (size_t)len) != len) return 0;
    c->open = 1;
    size_t rest = c->len - (end + 4);
    memmove(c->buf, c->buf + end + 4, rest);
    c->len = rest;
    return 1;
}

static void readable(Conn *c) {
    while (!c->dead) {
        if (c->cap - c->len < 4096) {
            c->cap = c->cap * 2;
            if (c->cap > MAX_MESSAGE + 64 + MAX_HEAD) { drop(c); return; }
            c->buf = realloc(c->buf, c->cap);
            if (!c->buf) abort();
        }
        ssize_t r = read(c->fd, c->buf + c->len, c->cap - c->len - 1);
        if (r == 0) { drop(c); return; }
        if (r < 0) {
            if (errno == EAGAIN || errno == EINTR) return;
            { drop(c); return; }
        }
        c->len += (size_t)r;
        if (!c->open) {
            c->buf[c->len] = 0;
            char *end = strstr((char *)c->buf, "\r\n\r\n");
            if (!end) {
                if (c->len > MAX_HEAD) { drop(c); return; }
                continue;
            }
            if (!handshake(c, (size_t)(end - (char *)c->buf))) { drop(c); return; }
        }
        if (!frames(c)) { drop(c); return; }
    }
}

static volatile sig_atomic_t stopping;
static void on_signal(int sig) { (void)sig; stopping = 1; }

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s PORT [DROPS_FILE]\n", argv[0]);
        return 2;
    }
    drops_file = argc > 2 ? argv[2] : NULL;
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    int one = 1, ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1])),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(ls, (struct sockaddr *)&addr, sizeof addr) || listen(ls, 4096)) {
        perror("floor: listen");
        return 1;
    }
    ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    struct epoll_event events[256];
    while (!stopping) {
        int n = epoll_wait(ep, events, 256, 200);
        for (int i = 0; i < n; i++) {
            Conn *c = events[i].data.ptr;
            if (c) {
                readable(c);
                continue;
            }
            for (;;) {
                int fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK);
                if (fd < 0) break;
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                c = calloc(1, sizeof *c);
                c->fd = fd;
                c->cap = 8192;
                c->buf = malloc(c->cap);
                all = grow(all, &capall, nall + 1, sizeof *all);
                c->index = nall;
                all[nall++] = c;
                struct epoll_event cev = {.events = EPOLLIN, .data.ptr = c};
                epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
            }
        }
        for (int i = 0; i < ngraveyard; i++) {
            free(graveyard[i]->buf);
            free(graveyard[i]->rooms);
            free(graveyard[i]);
        }
        ngraveyard = 0;
    }
    write_drops();
    return 0;
}
