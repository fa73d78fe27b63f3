/*
 * appliance.io._fastpath: the compiled data plane of the NTP server (Linux).
 *
 * The pure Python modules are the specification: appliance.ntp.server (what a
 * request gets), appliance.ntp.access (restrict matching) and
 * appliance.ntp.ratelimit (the GCRA buckets and KoD pacing). This module does
 * the same for the one kind of datagram that is nearly all of a time server's
 * traffic, a plain 48-octet client request (mode 3, versions 1 to 4), drops
 * and counts a datagram longer than MAX_DATAGRAM (1024) octets as the Python
 * server does ("oversize"), and hands every other datagram back to Python
 * whole. Differential tests (tests/unit/io/test_fastpath.py) hold the two to
 * the same answers, octet for octet.
 *
 * What it adds over the Python path is only speed: one recvmmsg(2) reads up
 * to 64 datagrams, each with its kernel receive timestamp (SO_TIMESTAMPNS);
 * each reply gets its own CLOCK_REALTIME reading right before its own
 * sendto(2), as in the Python path. Where the served clock is a soft clock
 * (appliance.clock.soft: CLOCK_REALTIME corrected in software), both times are
 * mapped onto it with the clock map the soft clock hands over after each
 * change (set_clock_map): the same arithmetic as SoftClock.at_base_ns, in
 * the same order, so both paths give the same nanosecond. The reply's header
 * fields come from NtpServer.reply_prefix (called back once per second and key, so the state is
 * never interpreted twice). Every datagram it does not ignore is counted in
 * the MRU list of recent clients (Mru, appliance.ntp.mru's table in C), which
 * the Python path records into too. No thread, no global state: everything lives in
 * the Server, Limiter and Mru objects.
 *
 * Safe from Python too (tests/sanitize/run runs the tests under ASan and
 * UBSan):
 * - both types are set up whole by tp_new (there is no __init__ to skip or to
 *   run twice); Server cannot be subclassed, Limiter can (FastRateLimiter adds
 *   its Python constructor) but a subclass still gets its table from tp_new;
 * - Server takes part in garbage collection (it holds NtpServer.reply_prefix,
 *   and the NtpServer holds its invalidate method: a cycle);
 * - every argument is range-checked: times are POSIX ns in [0, 2**62) (1970 to
 *   2116), so that no sum or difference of times and bucket spans (at most
 *   2**60 ns) leaves int64;
 * - no pointer into the object is kept across a call into Python (the prefix
 *   callback may run any code, close the server or change the state);
 * - serve() keeps its receive buffers in the object and is for one thread:
 *   a second serve() while one runs (from the callback, or from another
 *   thread while the callback runs) raises RuntimeError.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>

#define NS_PER_S 1000000000LL
#define NTP_UNIX_OFFSET_S 2208988800LL
#define NEVER (-(1LL << 62))
#define TIME_END (1LL << 62) /* times passed in lie in [0, TIME_END) */
#define MAX_SPAN (1LL << 60) /* a bucket's interval + tolerance, as appliance.ntp.ratelimit */
#define STEP_SLACK_NS NS_PER_S

#define MMSG_COUNT 64
#define MAX_DATAGRAM 1024              /* appliance.ntp.packet.MAX_DATAGRAM: longer is dropped */
#define RECV_SIZE (MAX_DATAGRAM + 1)   /* so that a longer datagram shows as one */
/* room for SCM_TIMESTAMPNS and, where the socket reports software timestamps for its transmit times
 * (interleaved mode) and the kernel cannot filter them from received datagrams, SCM_TIMESTAMPING */
#define CONTROL_SIZE 128
/* appliance.ntp.interleave.RX_FLAG: the lowest bit of every receive timestamp sent, clear in transmit ones */
#define RX_FLAG 1ULL
#define HEADER_LEN 48

enum { PASS = 0, LIMITED = 1, LIMITED_KOD = 2 };
enum { ACT_DROP = 0, ACT_REPLY = 1, ACT_KOD = 2, ACT_PUNT = 3 };

/* ---- time --------------------------------------------------------------- */

/* appliance.timebase.ntp64_from_ns for any int64 (era dropped: the seconds wrap modulo 2**32). */
static uint64_t
ntp64_from_ns(int64_t t)
{
    int64_t secs = t / NS_PER_S, rem = t % NS_PER_S;
    if (rem < 0) {
        rem += NS_PER_S;
        secs -= 1;
    }
    uint64_t frac = (((uint64_t)rem << 32) + NS_PER_S / 2) / NS_PER_S;
    return (((uint64_t)secs + (uint64_t)NTP_UNIX_OFFSET_S) << 32) + frac;
}

/* CLOCK_REALTIME in POSIX ns; a clock set past the year 2262 reads as INT64_MAX. */
static int64_t
realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec < 0 || ts.tv_sec >= INT64_MAX / NS_PER_S)
        return ts.tv_sec < 0 ? 0 : INT64_MAX;
    return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

/* Whether `t` (POSIX ns) may be used as a time here; otherwise OverflowError naming `what`. */
static int
time_ok(long long t, const char *what)
{
    if (t >= 0 && t < TIME_END)
        return 1;
    PyErr_Format(PyExc_OverflowError, "%s must be 0 .. 2**62 - 1 ns (1970 to 2116), not %lld", what, t);
    return 0;
}

static void
put64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static int64_t
floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* ---- addresses -------------------------------------------------------------
 * An address is 128 bits (hi, lo); IPv4 is kept as its IPv4-mapped IPv6 form,
 * which is also how appliance.ntp.access treats ::ffff:a.b.c.d. */

typedef struct {
    uint64_t hi, lo;
} addr128;

static const uint64_t V4_MAPPED_LO = 0x0000FFFF00000000ULL;

static int
is_v4(addr128 a)
{
    return a.hi == 0 && (a.lo & 0xFFFFFFFF00000000ULL) == V4_MAPPED_LO;
}

static uint64_t
load_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

static addr128
from_v4(const uint8_t *p)
{
    addr128 a = {0, V4_MAPPED_LO | ((uint64_t)p[0] << 24) | ((uint64_t)p[1] << 16) | ((uint64_t)p[2] << 8) | p[3]};
    return a;
}

static addr128
from_v6(const uint8_t *p)
{
    addr128 a = {load_be64(p), load_be64(p + 8)};
    return a;
}

/* Text (as Python's socket module prints it, a scope id allowed) to addr128; -1 if not an address. */
static int
parse_address(const char *text, addr128 *out)
{
    uint8_t buf[16];
    char tmp[64];
    if (strchr(text, ':') == NULL) {
        if (inet_pton(AF_INET, text, buf) != 1)
            return -1;
        *out = from_v4(buf);
        return 0;
    }
    size_t n = strcspn(text, "%");
    if (n >= sizeof tmp)
        return -1;
    memcpy(tmp, text, n);
    tmp[n] = '\0';
    if (inet_pton(AF_INET6, tmp, buf) != 1)
        return -1;
    *out = from_v6(buf);
    return 0;
}

/* ---- the rate limiter ------------------------------------------------------
 * appliance.ntp.ratelimit.RateLimiter, entry for entry: a fixed table of
 * `slots` entries in sets of `ways`, the least recently seen entry of a set
 * taken by a new client; a keyed hash (seeded from os.urandom by the caller)
 * picks the set, so nobody outside can aim at one. */

typedef struct {
    uint64_t hi, lo;
    int64_t seen, avg, min, kod;
} entry_t;

typedef struct {
    PyObject_HEAD entry_t *entries;
    Py_ssize_t slots, ways, set_mask, clients;
    int64_t avg_ns, avg_tau, min_ns, min_tau, kod_ns, kod_tau, kod_tat;
    int64_t avg_step, min_step, kod_step;
    uint64_t seed0, seed1;
    long long passed, limited, kod_sent, kod_suppressed, evictions;
    int kod_poll; /* a RATE KoD's poll field is at least this (log2 s): ntpd's max(client's, discard average) */
} Limiter;

static uint64_t
mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xFF51AFD7ED558CCDULL;
    h ^= h >> 33;
    h *= 0xC4CEB9FE1A85EC53ULL;
    h ^= h >> 33;
    return h;
}

static uint64_t
key_hash(const Limiter *l, addr128 a)
{
    return mix(mix(a.lo ^ l->seed0) ^ (a.hi + l->seed1));
}

/* The entry of `a`, claiming the least recently seen one of its set for a new client. */
static entry_t *
limiter_entry(Limiter *l, addr128 a)
{
    entry_t *set = l->entries + (Py_ssize_t)(key_hash(l, a) & (uint64_t)l->set_mask) * l->ways;
    entry_t *oldest = set;
    for (Py_ssize_t w = 0; w < l->ways; w++) {
        entry_t *e = set + w;
        if (e->seen != NEVER && e->hi == a.hi && e->lo == a.lo)
            return e;
        if (e->seen < oldest->seen)
            oldest = e;
    }
    if (oldest->seen != NEVER)
        l->evictions++;
    else
        l->clients++;
    oldest->hi = a.hi;
    oldest->lo = a.lo;
    oldest->avg = oldest->min = oldest->kod = NEVER;
    return oldest;
}

static int
limiter_check(Limiter *l, addr128 a, int64_t now, int kod)
{
    entry_t *e = limiter_entry(l, a);
    e->seen = now;
    int64_t tat_avg = e->avg < now ? now : e->avg;
    int64_t tat_min = e->min < now ? now : e->min;
    if (tat_avg - now <= l->avg_tau && tat_min - now <= l->min_tau) {
        e->avg = tat_avg + l->avg_ns;
        e->min = tat_min + l->min_ns;
        l->passed++;
        return PASS;
    }
    if (tat_avg - now > l->avg_step || tat_min - now > l->min_step || e->kod > now + STEP_SLACK_NS) {
        /* only when time went backwards: start the client afresh */
        e->avg = now + l->avg_ns;
        e->min = now + l->min_ns;
        e->kod = NEVER;
        l->passed++;
        return PASS;
    }
    l->limited++;
    if (!kod)
        return LIMITED;
    if (now - e->kod < l->avg_ns) {
        l->kod_suppressed++;
        return LIMITED;
    }
    int64_t tat = l->kod_tat;
    if (tat < now || tat - now > l->kod_step)
        tat = now;
    if (tat - now > l->kod_tau) {
        l->kod_suppressed++;
        return LIMITED;
    }
    l->kod_tat = tat + l->kod_ns;
    e->kod = now;
    l->kod_sent++;
    return LIMITED_KOD;
}

/* A bucket's refill interval and tolerance, checked: both >= 0, together at most MAX_SPAN. */
static int
bucket_ok(long long ns, long long tau, const char *name)
{
    if (ns >= 0 && tau >= 0 && ns <= MAX_SPAN && tau <= MAX_SPAN - ns)
        return 1;
    PyErr_Format(PyExc_ValueError, "%s: interval and tolerance must be >= 0 ns and at most 2**60 ns together", name);
    return 0;
}

static int
seed_arg(PyObject *o, uint64_t *out)
{
    if (!PyLong_Check(o)) {
        PyErr_SetString(PyExc_TypeError, "seed0 and seed1 must be ints");
        return -1;
    }
    unsigned long long v = PyLong_AsUnsignedLongLong(o); /* OverflowError unless 0 .. 2**64 - 1 */
    if (v == (unsigned long long)-1 && PyErr_Occurred())
        return -1;
    *out = v;
    return 0;
}

/* Limiter(avg_ns, avg_tau, min_ns, min_tau, kod_ns, kod_tau, slots, ways, seed0, seed1, kod_poll=3): the
 * whole table is set up here, so no Limiter (nor an instance of a subclass) exists without one. */
static PyObject *
Limiter_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"avg_ns", "avg_tau", "min_ns", "min_tau", "kod_ns", "kod_tau", "slots", "ways",
                             "seed0", "seed1", "kod_poll", NULL};
    long long avg_ns, avg_tau, min_ns, min_tau, kod_ns, kod_tau;
    Py_ssize_t slots, ways;
    PyObject *seed0_obj, *seed1_obj;
    uint64_t seed0, seed1;
    int kod_poll = 3;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "LLLLLLnnOO|i", kwlist, &avg_ns, &avg_tau, &min_ns, &min_tau,
                                     &kod_ns, &kod_tau, &slots, &ways, &seed0_obj, &seed1_obj, &kod_poll))
        return NULL;
    if (kod_poll < -128 || kod_poll > 127) {
        PyErr_SetString(PyExc_ValueError, "kod_poll must fit the poll field (-128 .. 127)");
        return NULL;
    }
    if (ways < 1 || (ways & (ways - 1)) || slots < ways || (slots & (slots - 1)) || slots > (1 << 26)) {
        PyErr_SetString(PyExc_ValueError, "slots and ways must be powers of two, ways <= slots <= 2**26");
        return NULL;
    }
    if (!bucket_ok(avg_ns, avg_tau, "average") || !bucket_ok(min_ns, min_tau, "minimum") ||
        !bucket_ok(kod_ns, kod_tau, "kod"))
        return NULL;
    if (seed_arg(seed0_obj, &seed0) < 0 || seed_arg(seed1_obj, &seed1) < 0)
        return NULL;
    Limiter *self = (Limiter *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->entries = PyMem_Calloc((size_t)slots, sizeof(entry_t));
    if (self->entries == NULL) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < slots; i++)
        self->entries[i].seen = NEVER;
    self->slots = slots;
    self->ways = ways;
    self->set_mask = slots / ways - 1;
    self->clients = 0;
    self->avg_ns = avg_ns;
    self->avg_tau = avg_tau;
    self->min_ns = min_ns;
    self->min_tau = min_tau;
    self->kod_ns = kod_ns;
    self->kod_tau = kod_tau;
    self->kod_tat = NEVER;
    self->avg_step = avg_tau + avg_ns + STEP_SLACK_NS;
    self->min_step = min_tau + min_ns + STEP_SLACK_NS;
    self->kod_step = kod_tau + kod_ns + STEP_SLACK_NS;
    self->kod_poll = kod_poll;
    self->seed0 = seed0;
    self->seed1 = seed1;
    self->passed = self->limited = self->kod_sent = self->kod_suppressed = self->evictions = 0;
    return (PyObject *)self;
}

static void
Limiter_dealloc(Limiter *self)
{
    PyMem_Free(self->entries);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
key_arg(PyObject *key, addr128 *out)
{
    const char *text = PyUnicode_AsUTF8(key);
    if (text == NULL)
        return -1;
    if (parse_address(text, out) < 0) {
        PyErr_Format(PyExc_ValueError, "not an IP address: %R", key);
        return -1;
    }
    return 0;
}

static PyObject *
Limiter_check(Limiter *self, PyObject *args)
{
    PyObject *key;
    long long now;
    int kod = 0;
    if (!PyArg_ParseTuple(args, "UL|p", &key, &now, &kod))
        return NULL;
    addr128 a;
    if (key_arg(key, &a) < 0 || !time_ok(now, "now_ns"))
        return NULL;
    return PyLong_FromLong(limiter_check(self, a, now, kod));
}

static int
Limiter_contains(Limiter *self, PyObject *key)
{
    addr128 a;
    const char *text = PyUnicode_Check(key) ? PyUnicode_AsUTF8(key) : NULL;
    if (text == NULL || parse_address(text, &a) < 0) {
        PyErr_Clear();
        return 0;
    }
    entry_t *set = self->entries + (Py_ssize_t)(key_hash(self, a) & (uint64_t)self->set_mask) * self->ways;
    for (Py_ssize_t w = 0; w < self->ways; w++)
        if (set[w].seen != NEVER && set[w].hi == a.hi && set[w].lo == a.lo)
            return 1;
    return 0;
}

static PyObject *
Limiter_clients(Limiter *self, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromSsize_t(self->clients);
}

static PyObject *
Limiter_get_slots(Limiter *self, void *Py_UNUSED(closure))
{
    return PyLong_FromSsize_t(self->slots);
}

#define COUNTER_GETSET(name)                                                                                           \
    static PyObject *Limiter_get_##name(Limiter *self, void *Py_UNUSED(closure))                                       \
    {                                                                                                                  \
        return PyLong_FromLongLong(self->name);                                                                        \
    }
COUNTER_GETSET(passed)
COUNTER_GETSET(limited)
COUNTER_GETSET(kod_sent)
COUNTER_GETSET(kod_suppressed)
COUNTER_GETSET(evictions)

static PyObject *
Limiter_get_kod_poll(Limiter *self, void *Py_UNUSED(closure))
{
    return PyLong_FromLong(self->kod_poll);
}

static PyGetSetDef Limiter_getset[] = {
    {"slots", (getter)Limiter_get_slots, NULL, "the number of clients the table remembers", NULL},
    {"passed", (getter)Limiter_get_passed, NULL, NULL, NULL},
    {"limited", (getter)Limiter_get_limited, NULL, NULL, NULL},
    {"kod_sent", (getter)Limiter_get_kod_sent, NULL, NULL, NULL},
    {"kod_suppressed", (getter)Limiter_get_kod_suppressed, NULL, NULL, NULL},
    {"evictions", (getter)Limiter_get_evictions, NULL, NULL, NULL},
    {"kod_poll", (getter)Limiter_get_kod_poll, NULL, "a RATE Kiss-o'-Death's poll is at least this", NULL},
    {NULL},
};

static PyMethodDef Limiter_methods[] = {
    {"check", (PyCFunction)Limiter_check, METH_VARARGS, "check(key, now_ns, kod=False) -> PASS, LIMITED or LIMITED_KOD"},
    {"clients", (PyCFunction)Limiter_clients, METH_NOARGS, "the number of clients remembered now"},
    {NULL},
};

static PySequenceMethods Limiter_as_sequence = {.sq_contains = (objobjproc)Limiter_contains};

static PyTypeObject LimiterType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "appliance.io._fastpath.Limiter",
    .tp_basicsize = sizeof(Limiter),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "The rate limiter's table in C (see appliance.ntp.ratelimit); set up whole by __new__",
    .tp_new = Limiter_new,
    .tp_dealloc = (destructor)Limiter_dealloc,
    .tp_methods = Limiter_methods,
    .tp_getset = Limiter_getset,
    .tp_as_sequence = &Limiter_as_sequence,
};

/* ---- the MRU list of recent clients (appliance.ntp.mru) -------------------- */

/* One client, 64 octets: address, first and last seen (POSIX ns), datagrams, hash chain and
 * recency list links (indices into the pool, -1: none), latest port, mode/version and flags. */
typedef struct {
    uint64_t hi, lo;
    int64_t first, last, count;
    int32_t hnext, older, newer;
    uint16_t port;
    uint8_t mv, pad;
    int32_t flags;
} mru_entry_t;

/* A fixed pool of `capacity` entries, chained from 2 * capacity (rounded to a power of two) hash
 * heads, and a list from the least (`oldest`) to the most recently seen (`newest`). Recording is
 * O(1): a hit moves the entry to the newest end; a new address takes a free entry or, when all are
 * in use, the oldest one's. */
typedef struct {
    PyObject_HEAD mru_entry_t *pool;
    int32_t *heads;
    Py_ssize_t capacity, used, head_mask;
    int32_t oldest, newest;
    uint64_t seed0, seed1;
    long long evicted;
} Mru;

static uint64_t
mru_hash(const Mru *m, addr128 a)
{
    return mix(mix(a.lo ^ m->seed0) ^ (a.hi + m->seed1));
}

static void
mru_unlink(Mru *m, int32_t i)
{
    mru_entry_t *e = m->pool + i;
    if (e->older >= 0)
        m->pool[e->older].newer = e->newer;
    else
        m->oldest = e->newer;
    if (e->newer >= 0)
        m->pool[e->newer].older = e->older;
    else
        m->newest = e->older;
}

static void
mru_append(Mru *m, int32_t i)
{
    mru_entry_t *e = m->pool + i;
    e->older = m->newest;
    e->newer = -1;
    if (m->newest >= 0)
        m->pool[m->newest].newer = i;
    else
        m->oldest = i;
    m->newest = i;
}

/* Count one datagram from `a` (appliance.ntp.mru.MruTable.record). */
static void
mru_record(Mru *m, addr128 a, int port, int64_t now, int mv, int flags)
{
    int32_t *head = m->heads + (Py_ssize_t)(mru_hash(m, a) & (uint64_t)m->head_mask);
    mru_entry_t *e;
    int32_t i;
    for (i = *head; i >= 0; i = m->pool[i].hnext) {
        e = m->pool + i;
        if (e->hi == a.hi && e->lo == a.lo) {
            e->port = (uint16_t)port;
            e->last = now;
            e->count++;
            e->mv = (uint8_t)(mv & 0x3F);
            e->flags = flags;
            if (m->newest != i) {
                mru_unlink(m, i);
                mru_append(m, i);
            }
            return;
        }
    }
    if (m->used < m->capacity) {
        i = (int32_t)m->used++;
    } else { /* full: the least recently seen entry goes */
        i = m->oldest;
        e = m->pool + i;
        mru_unlink(m, i);
        int32_t *p = m->heads + (Py_ssize_t)(mru_hash(m, (addr128){.hi = e->hi, .lo = e->lo}) & (uint64_t)m->head_mask);
        while (*p != i)
            p = &m->pool[*p].hnext;
        *p = e->hnext;
        m->evicted++;
    }
    e = m->pool + i;
    e->hi = a.hi;
    e->lo = a.lo;
    e->first = e->last = now;
    e->count = 1;
    e->port = (uint16_t)port;
    e->mv = (uint8_t)(mv & 0x3F);
    e->flags = flags;
    e->hnext = *head;
    *head = i;
    mru_append(m, i);
}

/* Mru(capacity, seed0, seed1): the whole table is set up here. */
static PyObject *
Mru_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"capacity", "seed0", "seed1", NULL};
    Py_ssize_t capacity;
    PyObject *seed0_obj, *seed1_obj;
    uint64_t seed0, seed1;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "nOO", kwlist, &capacity, &seed0_obj, &seed1_obj))
        return NULL;
    if (capacity < 1 || capacity > (1 << 24)) {
        PyErr_SetString(PyExc_ValueError, "capacity must be 1 .. 2**24");
        return NULL;
    }
    if (seed_arg(seed0_obj, &seed0) < 0 || seed_arg(seed1_obj, &seed1) < 0)
        return NULL;
    Py_ssize_t heads = 1;
    while (heads < 2 * capacity)
        heads <<= 1;
    Mru *self = (Mru *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->pool = PyMem_Calloc((size_t)capacity, sizeof(mru_entry_t));
    self->heads = PyMem_Malloc((size_t)heads * sizeof(int32_t));
    if (self->pool == NULL || self->heads == NULL) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    memset(self->heads, 0xFF, (size_t)heads * sizeof(int32_t)); /* -1: empty */
    self->capacity = capacity;
    self->head_mask = heads - 1;
    self->oldest = self->newest = -1;
    self->seed0 = seed0;
    self->seed1 = seed1;
    return (PyObject *)self;
}

static void
Mru_dealloc(Mru *self)
{
    PyMem_Free(self->pool);
    PyMem_Free(self->heads);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
Mru_record(Mru *self, PyObject *args)
{
    PyObject *key;
    int port, mv, flags;
    long long now;
    if (!PyArg_ParseTuple(args, "UiLii", &key, &port, &now, &mv, &flags))
        return NULL;
    addr128 a;
    if (key_arg(key, &a) < 0 || !time_ok(now, "now_ns"))
        return NULL;
    if (port < 0 || port > 65535) {
        PyErr_Format(PyExc_ValueError, "port must be 0 .. 65535, not %d", port);
        return NULL;
    }
    mru_record(self, a, port, now, mv, flags);
    Py_RETURN_NONE;
}

static PyObject *
addr_text(uint64_t hi, uint64_t lo)
{
    char text[INET6_ADDRSTRLEN];
    addr128 a = {.hi = hi, .lo = lo};
    if (is_v4(a)) {
        uint8_t b[4] = {(uint8_t)(lo >> 24), (uint8_t)(lo >> 16), (uint8_t)(lo >> 8), (uint8_t)lo};
        inet_ntop(AF_INET, b, text, sizeof text);
    } else {
        uint8_t b[16];
        for (int k = 0; k < 8; k++) {
            b[k] = (uint8_t)(hi >> (56 - 8 * k));
            b[8 + k] = (uint8_t)(lo >> (56 - 8 * k));
        }
        inet_ntop(AF_INET6, b, text, sizeof text);
    }
    return PyUnicode_FromString(text);
}

static PyObject *
entry_tuple(const mru_entry_t *e)
{
    return Py_BuildValue("(NiLLLii)", addr_text(e->hi, e->lo), (int)e->port, (long long)e->first,
                         (long long)e->last, (long long)e->count, (int)e->mv, (int)e->flags);
}

/* Up to `count` entries from pool index `i` on, towards the newest, as a list of entry tuples. */
static PyObject *
entries_from(Mru *self, int32_t i, Py_ssize_t count)
{
    PyObject *list = PyList_New(0);
    if (list == NULL)
        return NULL;
    for (; i >= 0 && PyList_GET_SIZE(list) < count; i = self->pool[i].newer) {
        PyObject *item = entry_tuple(self->pool + i);
        if (item == NULL || PyList_Append(list, item) < 0) {
            Py_XDECREF(item);
            Py_DECREF(list);
            return NULL;
        }
        Py_DECREF(item);
    }
    return list;
}

/* entries() -> [(addr, port, first_ns, last_ns, count, mv, flags)], least recently seen first. */
static PyObject *
Mru_entries(Mru *self, PyObject *Py_UNUSED(ignored))
{
    return entries_from(self, self->oldest, PY_SSIZE_T_MAX);
}

/* after(addr, last_ntp64, count) -> up to `count` entries newer than addr's, oldest first; None when addr is
 * not in the table or was seen since (its last-seen time, as an NTP timestamp, is not last_ntp64). addr
 * None: from the oldest. O(count): what mode 6's READ_MRU reads, a piece at a time. */
static PyObject *
Mru_after(Mru *self, PyObject *args)
{
    PyObject *key;
    unsigned long long last;
    Py_ssize_t count;
    if (!PyArg_ParseTuple(args, "OKn", &key, &last, &count))
        return NULL;
    if (count < 0) {
        PyErr_SetString(PyExc_ValueError, "count must be >= 0");
        return NULL;
    }
    int32_t i = self->oldest;
    if (key != Py_None) {
        addr128 a;
        if (!PyUnicode_Check(key)) {
            PyErr_SetString(PyExc_TypeError, "addr must be a str or None");
            return NULL;
        }
        if (key_arg(key, &a) < 0)
            return NULL;
        for (i = self->heads[(Py_ssize_t)(mru_hash(self, a) & (uint64_t)self->head_mask)]; i >= 0;
             i = self->pool[i].hnext)
            if (self->pool[i].hi == a.hi && self->pool[i].lo == a.lo)
                break;
        if (i < 0 || ntp64_from_ns(self->pool[i].last) != (uint64_t)last)
            Py_RETURN_NONE;
        i = self->pool[i].newer;
    }
    return entries_from(self, i, count);
}

/* newest() -> the most recently seen entry's tuple, or None when the table is empty. */
static PyObject *
Mru_newest(Mru *self, PyObject *Py_UNUSED(ignored))
{
    if (self->newest < 0)
        Py_RETURN_NONE;
    return entry_tuple(self->pool + self->newest);
}

static Py_ssize_t
Mru_length(Mru *self)
{
    return self->used;
}

static PyObject *
Mru_get_capacity(Mru *self, void *Py_UNUSED(closure))
{
    return PyLong_FromSsize_t(self->capacity);
}

static PyObject *
Mru_get_evicted(Mru *self, void *Py_UNUSED(closure))
{
    return PyLong_FromLongLong(self->evicted);
}

static PyObject *
Mru_get_nbytes(Mru *self, void *Py_UNUSED(closure))
{
    return PyLong_FromSsize_t(self->capacity * (Py_ssize_t)sizeof(mru_entry_t) +
                              (self->head_mask + 1) * (Py_ssize_t)sizeof(int32_t));
}

static PyGetSetDef Mru_getset[] = {
    {"capacity", (getter)Mru_get_capacity, NULL, "the most clients the table keeps", NULL},
    {"evicted", (getter)Mru_get_evicted, NULL, "entries given to a newer client when full", NULL},
    {"nbytes", (getter)Mru_get_nbytes, NULL, "the octets the table holds (fixed when made)", NULL},
    {NULL},
};

static PyMethodDef Mru_methods[] = {
    {"record", (PyCFunction)Mru_record, METH_VARARGS, "record(addr, port, now_ns, mv, flags)"},
    {"entries", (PyCFunction)Mru_entries, METH_NOARGS, "[(addr, port, first_ns, last_ns, count, mv, flags)], oldest first"},
    {"after", (PyCFunction)Mru_after, METH_VARARGS, "after(addr, last_ntp64, count) -> entries newer than addr's, or None"},
    {"newest", (PyCFunction)Mru_newest, METH_NOARGS, "the most recently seen entry, or None"},
    {NULL},
};

static PySequenceMethods Mru_as_sequence = {.sq_length = (lenfunc)Mru_length};

static PyTypeObject MruType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "appliance.io._fastpath.Mru",
    .tp_basicsize = sizeof(Mru),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "The MRU list of recent clients in C (see appliance.ntp.mru); set up whole by __new__",
    .tp_new = Mru_new,
    .tp_dealloc = (destructor)Mru_dealloc,
    .tp_methods = Mru_methods,
    .tp_getset = Mru_getset,
    .tp_as_sequence = &Mru_as_sequence,
};

/* ---- restrict entries ------------------------------------------------------ */

typedef struct {
    addr128 mask, net;
    int ntponly, flags, is_default;
} rule_t;

/* The access flag bits the data plane reads, as appliance.ntp.access.FLAG_BITS gives them. */
typedef struct {
    int ignore, noserve, kod, limited, version, notrust;
} flag_bits_t;

/* ---- the server ------------------------------------------------------------ */

/* Counters: the names are the Python server's (ServerCounters fields and drop reasons) and the
 * socket's (SocketCounters fields); take_counters() hands them over by name. */
enum {
    C_RECEIVED,
    C_SERVED,
    C_KOD,
    C_OVERSIZE,
    C_IGNORE,
    C_NOSERVE,
    C_VERSION_RESTRICTED,
    C_NOTRUST,
    C_RATE,
    C_SEND_ERRORS,
    C_RECEIVE_ERRORS,
    C_NO_TIMESTAMP,
    C_COUNT
};

static const char *const COUNTER_NAMES[C_COUNT] = {
    [C_RECEIVED] = "received",
    [C_SERVED] = "served",
    [C_KOD] = "kod_sent",
    [C_OVERSIZE] = "oversize",
    [C_IGNORE] = "ignore",
    [C_NOSERVE] = "noserve",
    [C_VERSION_RESTRICTED] = "version-restricted",
    [C_NOTRUST] = "notrust",
    [C_RATE] = "rate",
    [C_SEND_ERRORS] = "send_errors",
    [C_RECEIVE_ERRORS] = "receive_errors",
    [C_NO_TIMESTAMP] = "no_timestamp",
};

typedef struct {
    int64_t second; /* POSIX second the prefix was built for; INT64_MIN: none */
    uint64_t generation;
    uint8_t bytes[24];
} prefix_t;

#define PREFIX_COUNT (4 * 256 * 2) /* [4 versions][256 polls][2: is_default] */

/* appliance.clock.soft.SoftClock's state (its clock_map()): the served time at CLOCK_REALTIME `base` is
 *   local_anchor + round(local_frac + e + e * frequency_ppb * 1e-9 + slewed(e)),  e = base - base_anchor,
 * slewed(e) = copysign(min(|pending_ns|, slew_rate_ppm * 1e-6 * e), pending_ns) for e > 0 (else 0), then
 * + leap_step from the reading leap_at on (an armed leap second). */
typedef struct {
    int on; /* 0: the served clock is CLOCK_REALTIME itself */
    int leap_armed;
    int64_t base_anchor, local_anchor, leap_at, leap_step;
    double local_frac, frequency_ppb, pending_ns, slew_rate_ppm;
} clock_map_t;

/* The served clock's reading at CLOCK_REALTIME `base` (SoftClock.at_base_ns, operation for operation). */
static int64_t
served_ns(const clock_map_t *m, int64_t base)
{
    if (!m->on)
        return base;
    int64_t elapsed = base - m->base_anchor;
    double e = (double)elapsed, done = 0.0;
    if (elapsed > 0 && m->pending_ns != 0.0) {
        double budget = m->slew_rate_ppm * 1e-6 * e;
        done = copysign(fmin(fabs(m->pending_ns), budget), m->pending_ns);
    }
    double delta = m->local_frac + e + e * m->frequency_ppb * 1e-9 + done;
    if (!(fabs(delta) < (double)TIME_END)) /* only for a map and a time centuries apart: no overflow below */
        delta = delta < 0 ? -(double)TIME_END : (double)TIME_END;
    int64_t reading = m->local_anchor + (int64_t)nearbyint(delta); /* Python's round(): half to even */
    if (m->leap_armed && reading >= m->leap_at && __builtin_add_overflow(reading, m->leap_step, &reading))
        reading = m->leap_step > 0 ? INT64_MAX : INT64_MIN; /* a map and a time centuries apart */
    return reading;
}

typedef struct {
    PyObject_HEAD int fd;
    PyObject *prefix_fn; /* NtpServer.reply_prefix; NULL once closed */
    Limiter *limiter;    /* NULL: `limited` clients go to Python */
    Mru *mru;            /* NULL: no MRU list kept here */
    flag_bits_t bits;
    rule_t *v4, *v6;
    Py_ssize_t n4, n6;
    uint64_t generation;
    prefix_t *prefixes; /* PREFIX_COUNT, for the life of the object */
    clock_map_t clock;  /* the served clock over CLOCK_REALTIME (set_clock_map) */
    int busy;           /* serve() is running: its buffers below are in use */
    int dirty;          /* headers the last recvmmsg filled in: reset before the next */
    long long counters[C_COUNT];
    /* recvmmsg buffers (serve() only) */
    struct mmsghdr msgs[MMSG_COUNT];
    struct iovec iovs[MMSG_COUNT];
    struct sockaddr_storage names[MMSG_COUNT];
    uint8_t data[MMSG_COUNT][RECV_SIZE];
    uint8_t control[MMSG_COUNT][CONTROL_SIZE] __attribute__((aligned(8)));
} Server;

static PyTypeObject ServerType;

static int
rules_from_list(PyObject *list, int family, rule_t **out, Py_ssize_t *count)
{
    PyObject *seq = PySequence_Fast(list, "rules must be a sequence");
    if (seq == NULL)
        return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    rule_t *rules = PyMem_Calloc((size_t)(n ? n : 1), sizeof(rule_t));
    if (rules == NULL) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        const char *mb, *nb;
        Py_ssize_t ml, nl;
        int ntponly, flags, is_default;
        /* PySequence_Fast_GET_ITEM is borrowed, and PyArg_ParseTuple may run Python code (__bool__ of
         * a flag): hold the item, and copy the octets before letting go of it. */
        PyObject *item = Py_NewRef(PySequence_Fast_GET_ITEM(seq, i));
        if (!PyTuple_Check(item)) {
            Py_DECREF(item);
            PyErr_SetString(PyExc_TypeError, "a rule must be a tuple (mask, network, ntponly, flags, is_default)");
            goto fail;
        }
        if (!PyArg_ParseTuple(item, "y#y#pip", &mb, &ml, &nb, &nl, &ntponly, &flags, &is_default)) {
            Py_DECREF(item);
            goto fail;
        }
        if (ml != (family == 4 ? 4 : 16) || nl != ml || flags < 0) {
            Py_DECREF(item);
            PyErr_SetString(PyExc_ValueError, "a rule's mask and network must be 4 (IPv4) or 16 (IPv6) octets, "
                                              "its flags >= 0");
            goto fail;
        }
        if (family == 4) {
            rules[i].mask = (addr128){~0ULL, 0xFFFFFFFF00000000ULL | from_v4((const uint8_t *)mb).lo};
            rules[i].net = from_v4((const uint8_t *)nb);
        } else {
            rules[i].mask = from_v6((const uint8_t *)mb);
            rules[i].net = from_v6((const uint8_t *)nb);
        }
        Py_DECREF(item);
        rules[i].ntponly = ntponly;
        rules[i].flags = flags;
        rules[i].is_default = is_default;
    }
    Py_DECREF(seq);
    *out = rules;
    *count = n;
    return 0;
fail:
    Py_DECREF(seq);
    PyMem_Free(rules);
    return -1;
}

/* One flag bit from the mapping (appliance.ntp.access.FLAG_BITS): a single bit, 1 .. 2**30. */
static int
flag_bit(PyObject *bits, const char *name, int *out)
{
    PyObject *v = PyMapping_GetItemString(bits, name);
    if (v == NULL)
        return -1;
    long b = PyLong_Check(v) ? PyLong_AsLong(v) : -1;
    Py_DECREF(v);
    if (b == -1 && PyErr_Occurred())
        return -1;
    if (b < 1 || b > (1L << 30) || (b & (b - 1))) {
        PyErr_Format(PyExc_ValueError, "flag %s must be one bit, 1 .. 2**30", name);
        return -1;
    }
    *out = (int)b;
    return 0;
}

static void Server_release(Server *self);

/* Server(fd, v4, v6, prefix, limiter, flags, mru=None): everything is set up here (there is no __init__). */
static PyObject *
Server_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"fd", "v4", "v6", "prefix", "limiter", "flags", "mru", NULL};
    int fd;
    PyObject *v4, *v6, *prefix_fn, *limiter, *bits, *mru = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "iOOOOO|O", kwlist, &fd, &v4, &v6, &prefix_fn, &limiter, &bits,
                                     &mru))
        return NULL;
    if (mru != Py_None && !PyObject_TypeCheck(mru, &MruType)) {
        PyErr_SetString(PyExc_TypeError, "mru must be a _fastpath.Mru or None");
        return NULL;
    }
    if (fd < -1) {
        PyErr_Format(PyExc_ValueError, "fd must be a file descriptor (or -1: none), not %d", fd);
        return NULL;
    }
    if (limiter != Py_None && !PyObject_TypeCheck(limiter, &LimiterType)) {
        PyErr_SetString(PyExc_TypeError, "limiter must be a _fastpath.Limiter or None");
        return NULL;
    }
    if (!PyCallable_Check(prefix_fn)) {
        PyErr_SetString(PyExc_TypeError, "prefix must be callable");
        return NULL;
    }
    Server *self = (Server *)type->tp_alloc(type, 0); /* zeroed, and tracked by the collector */
    if (self == NULL)
        return NULL;
    self->fd = fd;
    self->generation = 1;
    flag_bits_t *b = &self->bits;
    if (flag_bit(bits, "ignore", &b->ignore) < 0 || flag_bit(bits, "noserve", &b->noserve) < 0 ||
        flag_bit(bits, "kod", &b->kod) < 0 || flag_bit(bits, "limited", &b->limited) < 0 ||
        flag_bit(bits, "version", &b->version) < 0 || flag_bit(bits, "notrust", &b->notrust) < 0)
        goto fail;
    if (__builtin_popcount((unsigned)(b->ignore | b->noserve | b->kod | b->limited | b->version | b->notrust)) != 6) {
        PyErr_SetString(PyExc_ValueError, "flags ignore, noserve, kod, limited, version, notrust: distinct bits");
        goto fail;
    }
    if (rules_from_list(v4, 4, &self->v4, &self->n4) < 0 || rules_from_list(v6, 6, &self->v6, &self->n6) < 0)
        goto fail;
    self->prefixes = PyMem_Calloc(PREFIX_COUNT, sizeof(prefix_t));
    if (self->prefixes == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    for (int i = 0; i < PREFIX_COUNT; i++)
        self->prefixes[i].second = INT64_MIN;
    for (int i = 0; i < MMSG_COUNT; i++) {
        struct msghdr *h = &self->msgs[i].msg_hdr;
        self->iovs[i].iov_base = self->data[i];
        self->iovs[i].iov_len = RECV_SIZE;
        h->msg_name = &self->names[i];
        h->msg_iov = &self->iovs[i];
        h->msg_iovlen = 1;
        h->msg_control = self->control[i];
    }
    self->dirty = MMSG_COUNT; /* the lengths are set before the first recvmmsg */
    self->prefix_fn = Py_NewRef(prefix_fn);
    self->limiter = limiter == Py_None ? NULL : (Limiter *)Py_NewRef(limiter);
    self->mru = mru == Py_None ? NULL : (Mru *)Py_NewRef(mru);
    return (PyObject *)self;
fail:
    Py_DECREF(self);
    return NULL;
}

static int
Server_traverse(Server *self, visitproc visit, void *arg)
{
    Py_VISIT(self->prefix_fn);
    Py_VISIT(self->limiter);
    Py_VISIT(self->mru);
    return 0;
}

/* Let go of the Python objects (the collector breaking a cycle, or close()). */
static void
Server_release(Server *self)
{
    Py_CLEAR(self->prefix_fn);
    Py_CLEAR(self->limiter);
    Py_CLEAR(self->mru);
}

static int
Server_clear(Server *self)
{
    Server_release(self);
    return 0;
}

static void
Server_dealloc(Server *self)
{
    PyObject_GC_UnTrack(self);
    Server_release(self);
    PyMem_Free(self->v4);
    PyMem_Free(self->v6);
    PyMem_Free(self->prefixes);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* appliance.ntp.access.AccessTable._match: flags and is_default of the most specific entry. */
static void
lookup(const Server *s, addr128 a, int from_ntp_port, int *flags, int *is_default)
{
    const rule_t *rules;
    Py_ssize_t n;
    if (is_v4(a)) {
        if ((a.lo & 0xF0000000ULL) == 0xE0000000ULL) { /* 224.0.0.0/4 */
            *flags = s->bits.ignore;
            *is_default = 0;
            return;
        }
        rules = s->v4;
        n = s->n4;
    } else {
        if ((a.hi >> 56) == 0xFF) { /* ff00::/8 */
            *flags = s->bits.ignore;
            *is_default = 0;
            return;
        }
        rules = s->v6;
        n = s->n6;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        const rule_t *r = rules + i;
        if ((a.hi & r->mask.hi) == r->net.hi && (a.lo & r->mask.lo) == r->net.lo && (from_ntp_port || !r->ntponly)) {
            *flags = r->flags;
            *is_default = r->is_default;
            return;
        }
    }
    /* every family has a default entry; without one, nothing is served */
    *flags = s->bits.ignore;
    *is_default = 0;
}

/* Octets 0..23 of a reply into `out`: NtpServer.reply_prefix(version, 4, poll, is_default, rx_ns), cached
 * per second and state generation. The callback may run any Python code (close this server, change the
 * state, call handle()): nothing into the object is held across it, and what it returns is cached only
 * when the state did not change meanwhile. -1 with a Python error set when the callback failed. */
static int
get_prefix(Server *s, int version, int poll, int is_default, int64_t rx_ns, uint8_t *out)
{
    Py_ssize_t slot = ((Py_ssize_t)(version - 1) * 256 + poll) * 2 + is_default;
    int64_t second = floor_div(rx_ns, NS_PER_S);
    const prefix_t *p = s->prefixes + slot;
    uint64_t generation = s->generation;
    if (p->second == second && p->generation == generation) {
        memcpy(out, p->bytes, 24);
        return 0;
    }
    PyObject *fn = s->prefix_fn;
    if (fn == NULL) {
        PyErr_SetString(PyExc_ValueError, "the data plane is closed");
        return -1;
    }
    Py_INCREF(fn);
    PyObject *r = PyObject_CallFunction(fn, "iiiOL", version, 4, poll, is_default ? Py_True : Py_False,
                                        (long long)rx_ns);
    Py_DECREF(fn);
    if (r == NULL)
        return -1;
    if (!PyBytes_Check(r) || PyBytes_GET_SIZE(r) != 24) {
        Py_DECREF(r);
        PyErr_SetString(PyExc_TypeError, "the prefix callback must return 24 bytes");
        return -1;
    }
    memcpy(out, PyBytes_AS_STRING(r), 24);
    Py_DECREF(r);
    if (s->generation == generation) {
        prefix_t *q = s->prefixes + slot;
        memcpy(q->bytes, out, 24);
        q->second = second;
        q->generation = generation;
    }
    return 0;
}

/* Decide what a datagram gets; for ACT_REPLY and ACT_KOD, `out` holds the 48-octet reply (the
 * transmit timestamp, octets 40..47, still to be written for ACT_REPLY). `rx_ns` must satisfy
 * time_ok(). Returns -1 with a Python error set when the prefix callback failed. */
/* Count a datagram the data plane dealt with (received, and what became of it); returns `act`.
 * Counted once its fate is sealed, after any call into Python (which may take the counters). */
static int
counted(Server *s, int what, int act)
{
    s->counters[C_RECEIVED]++;
    s->counters[what]++;
    return act;
}

static int
decide(Server *s, const uint8_t *d, Py_ssize_t len, addr128 a, int port, int64_t rx_ns, uint8_t *out)
{
    if (s->prefix_fn == NULL) /* closed (from a callback, in the middle of a batch): Python serves */
        return ACT_PUNT;
    if (len > MAX_DATAGRAM)
        return counted(s, C_OVERSIZE, ACT_DROP);
    if (len != HEADER_LEN)
        return ACT_PUNT;
    int version = (d[0] >> 3) & 7, mode = d[0] & 7;
    if (mode != 3 || version < 1 || version > 4)
        return ACT_PUNT;
    /* origin marked as one of our receive timestamps, receive != transmit: it may ask for interleaved mode
     * (appliance.ntp.interleave), which the Python server answers */
    if ((d[31] & RX_FLAG) && memcmp(d + 32, d + 40, 8) != 0)
        return ACT_PUNT;
    const flag_bits_t *b = &s->bits;
    int flags, is_default;
    lookup(s, a, port == 123, &flags, &is_default);
    if (flags & b->ignore)
        return counted(s, C_IGNORE, ACT_DROP);
    if ((flags & b->limited) && s->limiter == NULL) /* nothing counted yet: Python takes it from the start */
        return ACT_PUNT;
    if (s->mru != NULL) /* every datagram not ignored, whatever it gets (appliance.ntp.mru) */
        mru_record(s->mru, a, port, rx_ns, d[0], flags);
    if (flags & b->noserve)
        return counted(s, C_NOSERVE, ACT_DROP);
    if ((flags & b->version) && version != 4)
        return counted(s, C_VERSION_RESTRICTED, ACT_DROP);
    if (flags & b->notrust) /* a 48-octet request has no MAC */
        return counted(s, C_NOTRUST, ACT_DROP);
    if (flags & b->limited) {
        int verdict = limiter_check(s->limiter, a, rx_ns, (flags & b->kod) != 0);
        if (verdict == LIMITED_KOD) {
            /* RATE KoD: leap 3, stratum 0, the client's poll or the discard average if that is longer,
             * "RATE", and the client's own transmit timestamp in the reference, origin, receive and
             * transmit fields */
            int asked = (int8_t)d[2];
            memset(out, 0, 16);
            out[0] = (uint8_t)((3 << 6) | (version << 3) | 4);
            out[2] = (uint8_t)(asked > s->limiter->kod_poll ? asked : s->limiter->kod_poll);
            memcpy(out + 12, "RATE", 4);
            for (int k = 16; k < 48; k += 8)
                memcpy(out + k, d + 40, 8);
            return counted(s, C_KOD, ACT_KOD);
        }
        if (verdict != PASS)
            return counted(s, C_RATE, ACT_DROP);
    }
    if (get_prefix(s, version, d[2], is_default, rx_ns, out) < 0)
        return -1; /* not counted: the callback, not the datagram, failed */
    memcpy(out + 24, d + 40, 8);
    put64(out + 32, ntp64_from_ns(rx_ns) | RX_FLAG);
    return counted(s, C_SERVED, ACT_REPLY);
}

static PyObject *
address_tuple(const struct sockaddr_storage *ss)
{
    char text[INET6_ADDRSTRLEN];
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &sin->sin_addr, text, sizeof text);
        return Py_BuildValue("(si)", text, ntohs(sin->sin_port));
    }
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
    inet_ntop(AF_INET6, &sin6->sin6_addr, text, sizeof text);
    return Py_BuildValue("(siII)", text, ntohs(sin6->sin6_port), (unsigned int)ntohl(sin6->sin6_flowinfo),
                         (unsigned int)sin6->sin6_scope_id);
}

/* The kernel's receive timestamp (POSIX ns), or -1 when there is none. */
static int64_t
rx_timestamp(struct msghdr *h)
{
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(h); cm != NULL; cm = CMSG_NXTHDR(h, cm)) {
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_TIMESTAMPNS &&
            cm->cmsg_len >= CMSG_LEN(sizeof(struct timespec))) {
            struct timespec ts;
            memcpy(&ts, CMSG_DATA(cm), sizeof ts);
            if (ts.tv_sec == 0 && ts.tv_nsec == 0)
                return -1;
            if (ts.tv_sec < 0 || ts.tv_sec >= TIME_END / NS_PER_S || ts.tv_nsec < 0 || ts.tv_nsec >= NS_PER_S)
                return INT64_MAX; /* out of range: left to Python */
            return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
        }
    }
    return -1;
}

static int
closed_error(Server *self)
{
    if (self->prefix_fn != NULL)
        return 0;
    PyErr_SetString(PyExc_ValueError, "the data plane is closed");
    return -1;
}

/* Read and answer up to `limit` (>= 0) datagrams waiting on the socket; those left to Python are
 * appended to *punted (made when first needed). The caller holds `busy`. 0, or -1 with a Python error
 * set (ENOSYS, EBADF, ENOTSOCK from recvmmsg, or no memory). */
static int
serve_batch(Server *self, int limit, PyObject **punted)
{
    long long *c = self->counters;
    uint8_t out[HEADER_LEN];
    long long done = 0;
    while (done < limit) {
        for (int i = 0; i < self->dirty; i++) { /* what the kernel overwrote last time */
            struct msghdr *h = &self->msgs[i].msg_hdr;
            h->msg_namelen = sizeof self->names[i];
            h->msg_controllen = CONTROL_SIZE;
            h->msg_flags = 0;
        }
        int n = recvmmsg(self->fd, self->msgs, MMSG_COUNT, MSG_DONTWAIT, NULL);
        self->dirty = n > 0 ? n : 1; /* a failed call may have written to the first */
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            if (errno == EINTR)
                continue;
            if (errno == ENOSYS || errno == EBADF || errno == ENOTSOCK) {
                PyErr_SetFromErrno(PyExc_OSError);
                return -1;
            }
            c[C_RECEIVE_ERRORS]++; /* ICMP errors surfacing on the socket and the like */
            done++;
            continue;
        }
        if (n == 0)
            break;
        done += n;
        for (int i = 0; i < n; i++) {
            struct msghdr *h = &self->msgs[i].msg_hdr;
            const uint8_t *d = self->data[i];
            /* a datagram longer than RECV_SIZE comes cut to RECV_SIZE (MSG_TRUNC): still oversize */
            Py_ssize_t len = (Py_ssize_t)self->msgs[i].msg_len;
            struct sockaddr_storage *name = &self->names[i];
            int64_t rx_ns = rx_timestamp(h);
            if (rx_ns < 0) {
                c[C_NO_TIMESTAMP]++;
                rx_ns = realtime_ns();
            }
            rx_ns = served_ns(&self->clock, rx_ns);
            addr128 a;
            int port;
            if (name->ss_family == AF_INET && h->msg_namelen >= sizeof(struct sockaddr_in)) {
                const struct sockaddr_in *sin = (const struct sockaddr_in *)name;
                a = from_v4((const uint8_t *)&sin->sin_addr);
                port = ntohs(sin->sin_port);
            } else if (name->ss_family == AF_INET6 && h->msg_namelen >= sizeof(struct sockaddr_in6)) {
                const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)name;
                a = from_v6((const uint8_t *)&sin6->sin6_addr);
                port = ntohs(sin6->sin6_port);
            } else {
                c[C_RECEIVE_ERRORS]++;
                continue;
            }
            int act = rx_ns >= 0 && rx_ns < TIME_END ? decide(self, d, len, a, port, rx_ns, out) : ACT_PUNT;
            if (act == ACT_REPLY || act == ACT_KOD) {
                if (act == ACT_REPLY) /* transmit timestamp: read right before this reply's own sendto */
                    put64(out + 40, ntp64_from_ns(served_ns(&self->clock, realtime_ns())) & ~RX_FLAG);
                if (sendto(self->fd, out, HEADER_LEN, 0, (struct sockaddr *)name, h->msg_namelen) < 0)
                    c[C_SEND_ERRORS]++;
            } else if (act == ACT_PUNT) {
                if (*punted == NULL && (*punted = PyList_New(0)) == NULL)
                    return -1;
                PyObject *item = Py_BuildValue("(y#NL)", d, len, address_tuple(name), (long long)rx_ns);
                if (item == NULL || PyList_Append(*punted, item) < 0) {
                    Py_XDECREF(item);
                    return -1;
                }
                Py_DECREF(item);
            } else if (act < 0) { /* a bug in the prefix callback: report it, lose nothing else */
                PyErr_WriteUnraisable((PyObject *)self);
            }
        }
        if (n < MMSG_COUNT)
            break;
    }
    return 0;
}

/* serve(limit) -> list of (data, address, rx_ns) for Python to handle, or None.
 * Reads and answers up to `limit` (>= 0) datagrams waiting on the socket. One thread: RuntimeError
 * when called while a serve() or wait() of this object runs. */
static PyObject *
Server_serve(Server *self, PyObject *args)
{
    int limit;
    if (!PyArg_ParseTuple(args, "i", &limit))
        return NULL;
    if (limit < 0) {
        PyErr_Format(PyExc_ValueError, "limit must be >= 0, not %d", limit);
        return NULL;
    }
    if (closed_error(self) < 0)
        return NULL;
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "serve() is already running on this data plane (one thread only)");
        return NULL;
    }
    self->busy = 1;
    PyObject *punted = NULL;
    int r = serve_batch(self, limit, &punted);
    self->busy = 0;
    if (r < 0) {
        Py_XDECREF(punted);
        return NULL;
    }
    if (punted == NULL)
        Py_RETURN_NONE;
    return punted;
}

static int64_t
monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

#define WAIT_SERVERS 16
#define WAIT_EVENTS 16
#define COUNTS_EVERY_NS NS_PER_S /* after serving, back to Python at least this often */

/* wait(epfd, servers, timeout, limit) -> list of (index, punted list) or None.
 *
 * The event loop's wait (appliance.io.loop.EventLoop.set_wait), done here: epoll_wait on the loop's
 * epoll descriptor `epfd` (the GIL let go meanwhile), and while only the sockets of `servers` (a tuple
 * of Server, at most 16) are ready, answer their datagrams here (serve(limit) each) and wait again, so
 * that a wake-up costs no Python. Returns to Python when `timeout` seconds have passed, any other file
 * of the loop is ready (its wake-up socket: a signal or a stop), epoll_wait is interrupted, a datagram
 * is left to Python (the list says whose), or 1 s after it first served one (so that Python takes
 * the counts at least that often). Each server is busy meanwhile, as in serve(). */
static PyObject *
fp_wait(PyObject *Py_UNUSED(module), PyObject *args)
{
    int epfd, limit;
    PyObject *servers;
    double timeout;
    if (!PyArg_ParseTuple(args, "iO!di", &epfd, &PyTuple_Type, &servers, &timeout, &limit))
        return NULL;
    Py_ssize_t count = PyTuple_GET_SIZE(servers);
    if (count > WAIT_SERVERS) {
        PyErr_Format(PyExc_ValueError, "at most %d servers, not %zd", WAIT_SERVERS, count);
        return NULL;
    }
    if (limit < 0 || !(timeout >= 0.0 && timeout <= 86400.0)) {
        PyErr_SetString(PyExc_ValueError, "limit must be >= 0 and timeout 0 .. 86400 s");
        return NULL;
    }
    Server *s[WAIT_SERVERS];
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *o = PyTuple_GET_ITEM(servers, i);
        if (!PyObject_TypeCheck(o, &ServerType)) {
            PyErr_SetString(PyExc_TypeError, "servers must be a tuple of _fastpath.Server");
            return NULL;
        }
        s[i] = (Server *)o;
        if (closed_error(s[i]) < 0)
            return NULL;
        if (s[i]->busy) {
            PyErr_SetString(PyExc_RuntimeError, "serve() is already running on this data plane (one thread only)");
            return NULL;
        }
    }
    for (Py_ssize_t i = 0; i < count; i++)
        s[i]->busy = 1; /* the tuple (held by the call's arguments) keeps each alive */
    PyObject *result = NULL;
    int64_t start = monotonic_ns(), deadline = start + (int64_t)(timeout * 1e9), served_at = -1;
    for (;;) {
        int64_t now = monotonic_ns(), left = deadline - now;
        int ms = left <= 0 ? 0 : (int)((left + 999999) / 1000000);
        struct epoll_event evs[WAIT_EVENTS];
        int n;
        Py_BEGIN_ALLOW_THREADS
        n = epoll_wait(epfd, evs, WAIT_EVENTS, ms);
        Py_END_ALLOW_THREADS
        if (n < 0) {
            if (errno == EINTR)
                break; /* a signal: its handler runs in Python */
            PyErr_SetFromErrno(PyExc_OSError);
            goto error;
        }
        if (n == 0)
            break;
        int back = 0;
        for (int e = 0; e < n; e++) {
            Py_ssize_t i = 0;
            while (i < count && s[i]->fd != evs[e].data.fd)
                i++;
            if (i == count || s[i]->prefix_fn == NULL) { /* another file of the loop, or closed meanwhile */
                back = 1;
                continue;
            }
            if (evs[e].events & EPOLLERR) /* transmit times on the error queue: Python reads them */
                back = 1;
            PyObject *punted = NULL;
            if (serve_batch(s[i], limit, &punted) < 0) {
                Py_XDECREF(punted);
                goto error;
            }
            if (served_at < 0)
                served_at = monotonic_ns();
            if (punted != NULL) {
                back = 1;
                if (result == NULL && (result = PyList_New(0)) == NULL) {
                    Py_DECREF(punted);
                    goto error;
                }
                PyObject *item = Py_BuildValue("(nN)", i, punted);
                if (item == NULL || PyList_Append(result, item) < 0) {
                    Py_XDECREF(item);
                    goto error;
                }
                Py_DECREF(item);
            }
        }
        now = monotonic_ns();
        if (back || now >= deadline || (served_at >= 0 && now - served_at >= COUNTS_EVERY_NS))
            break;
    }
    for (Py_ssize_t i = 0; i < count; i++)
        s[i]->busy = 0;
    if (result == NULL)
        Py_RETURN_NONE;
    return result;
error:
    for (Py_ssize_t i = 0; i < count; i++)
        s[i]->busy = 0;
    Py_XDECREF(result);
    return NULL;
}

/* handle(data, ip, port, rx_ns, tx_ns) -> (action, reply or None): decide() without a socket, for the
 * differential tests. action: 0 drop, 1 reply, 2 KoD, 3 left to Python. */
static PyObject *
Server_handle(Server *self, PyObject *args)
{
    Py_buffer data;
    PyObject *ip;
    int port;
    long long rx_ns, tx_ns;
    if (!PyArg_ParseTuple(args, "y*UiLL", &data, &ip, &port, &rx_ns, &tx_ns))
        return NULL;
    PyObject *result = NULL;
    addr128 a;
    if (port < 0 || port > 65535) {
        PyErr_Format(PyExc_ValueError, "port must be 0 .. 65535, not %d", port);
        goto done;
    }
    if (!time_ok(rx_ns, "rx_ns") || !time_ok(tx_ns, "tx_ns") || key_arg(ip, &a) < 0 || closed_error(self) < 0)
        goto done;
    uint8_t out[HEADER_LEN];
    int act = decide(self, data.buf, data.len, a, port, rx_ns, out); /* `data` stays held meanwhile */
    if (act < 0)
        goto done;
    if (act == ACT_REPLY)
        put64(out + 40, ntp64_from_ns(tx_ns) & ~RX_FLAG);
    if (act == ACT_REPLY || act == ACT_KOD)
        result = Py_BuildValue("(iy#)", act, out, (Py_ssize_t)HEADER_LEN);
    else
        result = Py_BuildValue("(iO)", act, Py_None);
done:
    PyBuffer_Release(&data);
    return result;
}

/* take_counters() -> {name: count} of the counts since the last call that are not zero, zeroing them. */
static PyObject *
Server_take_counters(Server *self, PyObject *Py_UNUSED(ignored))
{
    long long taken[C_COUNT];
    memcpy(taken, self->counters, sizeof taken);
    memset(self->counters, 0, sizeof self->counters);
    PyObject *d = PyDict_New();
    if (d == NULL)
        goto fail;
    for (int i = 0; i < C_COUNT; i++) {
        if (taken[i] == 0)
            continue;
        PyObject *v = PyLong_FromLongLong(taken[i]);
        if (v == NULL || PyDict_SetItemString(d, COUNTER_NAMES[i], v) < 0) {
            Py_XDECREF(v);
            goto fail;
        }
        Py_DECREF(v);
    }
    return d;
fail: /* put them back: no count is lost to a failed allocation */
    Py_XDECREF(d);
    for (int i = 0; i < C_COUNT; i++)
        self->counters[i] += taken[i];
    return NULL;
}

/* Whether `t` (ns) may serve as a time of the clock map (its anchors, leap_at). */
static int
anchor_ok(long long t, const char *what)
{
    if (t > -TIME_END && t < TIME_END)
        return 1;
    PyErr_Format(PyExc_OverflowError, "%s must lie within +-2**62 ns, not %lld", what, t);
    return 0;
}

/* set_clock_map(None | (base_anchor, local_anchor, local_frac, frequency_ppb, pending_ns, slew_rate_ppm,
 * leap_at or None, leap_step)): the served clock from now on (SoftClock.clock_map()); None: CLOCK_REALTIME. */
static PyObject *
Server_set_clock_map(Server *self, PyObject *arg)
{
    if (arg == Py_None) {
        self->clock.on = 0;
        Py_RETURN_NONE;
    }
    long long base_anchor, local_anchor, leap_step;
    double frac, freq, pending, rate;
    PyObject *leap_at;
    if (!PyArg_ParseTuple(arg, "LLddddOL;the clock map is (base_anchor, local_anchor, local_frac, frequency_ppb, "
                               "pending_ns, slew_rate_ppm, leap_at or None, leap_step)",
                          &base_anchor, &local_anchor, &frac, &freq, &pending, &rate, &leap_at, &leap_step))
        return NULL;
    long long at = 0;
    if (leap_at != Py_None && (at = PyLong_AsLongLong(leap_at)) == -1 && PyErr_Occurred())
        return NULL;
    if (!anchor_ok(base_anchor, "base_anchor") || !anchor_ok(local_anchor, "local_anchor") ||
        !anchor_ok(at, "leap_at"))
        return NULL;
    if (leap_step < -(1LL << 61) || leap_step > (1LL << 61)) {
        PyErr_Format(PyExc_OverflowError, "leap_step must lie within +-2**61 ns, not %lld", leap_step);
        return NULL;
    }
    if (!isfinite(frac) || !isfinite(freq) || !isfinite(pending) || !(rate > 0.0 && isfinite(rate)) ||
        fabs(freq) > 1e8 || fabs(pending) > 1e18 || fabs(frac) >= 1.0) {
        PyErr_SetString(PyExc_ValueError, "the clock map's frequency, pending offset, fraction or slew rate is "
                                          "out of range");
        return NULL;
    }
    clock_map_t m = {1, leap_at != Py_None, base_anchor, local_anchor, at, leap_step, frac, freq, pending, rate};
    self->clock = m;
    Py_RETURN_NONE;
}

/* served_ns(base_ns) -> the served clock's reading at CLOCK_REALTIME base_ns (for the tests). */
static PyObject *
Server_served_ns(Server *self, PyObject *arg)
{
    long long base = PyLong_AsLongLong(arg);
    if (base == -1 && PyErr_Occurred())
        return NULL;
    if (!time_ok(base, "base_ns"))
        return NULL;
    return PyLong_FromLongLong(served_ns(&self->clock, base));
}

static PyObject *
Server_invalidate(Server *self, PyObject *Py_UNUSED(ignored))
{
    self->generation++;
    Py_RETURN_NONE;
}

static PyObject *
Server_close(Server *self, PyObject *Py_UNUSED(ignored))
{
    Server_release(self);
    Py_RETURN_NONE;
}

static PyObject *
Server_get_closed(Server *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(self->prefix_fn == NULL);
}

static PyGetSetDef Server_getset[] = {
    {"closed", (getter)Server_get_closed, NULL, "whether close() let go of the server's callback", NULL},
    {NULL},
};

static PyMethodDef Server_methods[] = {
    {"serve", (PyCFunction)Server_serve, METH_VARARGS, "serve(limit) -> datagrams left to Python, or None"},
    {"handle", (PyCFunction)Server_handle, METH_VARARGS, "handle(data, ip, port, rx_ns, tx_ns) -> (action, reply)"},
    {"take_counters", (PyCFunction)Server_take_counters, METH_NOARGS, "the counts since the last call, by name"},
    {"set_clock_map", (PyCFunction)Server_set_clock_map, METH_O, "serve a soft clock over CLOCK_REALTIME (None: it)"},
    {"served_ns", (PyCFunction)Server_served_ns, METH_O, "served_ns(base_ns) -> the served clock's reading then"},
    {"invalidate", (PyCFunction)Server_invalidate, METH_NOARGS, "the served state changed: rebuild the prefixes"},
    {"close", (PyCFunction)Server_close, METH_NOARGS, "let go of the prefix callback, the limiter and the MRU table"},
    {NULL},
};

static PyTypeObject ServerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "appliance.io._fastpath.Server",
    .tp_basicsize = sizeof(Server),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC, /* no subclasses */
    .tp_doc = "The NTP server's data plane for plain client requests (see the module docstring)",
    .tp_new = Server_new,
    .tp_dealloc = (destructor)Server_dealloc,
    .tp_traverse = (traverseproc)Server_traverse,
    .tp_clear = (inquiry)Server_clear,
    .tp_free = PyObject_GC_Del,
    .tp_methods = Server_methods,
    .tp_getset = Server_getset,
};

static PyObject *
fp_ntp64_from_ns(PyObject *Py_UNUSED(module), PyObject *arg)
{
    long long t = PyLong_AsLongLong(arg); /* OverflowError outside int64 */
    if (t == -1 && PyErr_Occurred())
        return NULL;
    return PyLong_FromUnsignedLongLong(ntp64_from_ns(t));
}

static PyMethodDef module_methods[] = {
    {"ntp64_from_ns", fp_ntp64_from_ns, METH_O, "appliance.timebase.ntp64_from_ns in C (for the tests)"},
    {"wait", fp_wait, METH_VARARGS, "wait(epfd, servers, timeout, limit) -> [(index, punted)] or None"},
    {NULL},
};

static struct PyModuleDef fastpath_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "appliance.io._fastpath",
    .m_doc = "The NTP server's compiled data plane (Linux); see appliance/io/_fastpath.c",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC
PyInit__fastpath(void)
{
    if (PyType_Ready(&LimiterType) < 0 || PyType_Ready(&MruType) < 0 || PyType_Ready(&ServerType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&fastpath_module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "Limiter", (PyObject *)&LimiterType) < 0 ||
        PyModule_AddObjectRef(m, "Server", (PyObject *)&ServerType) < 0 ||
        PyModule_AddObjectRef(m, "Mru", (PyObject *)&MruType) < 0 ||
        PyModule_AddIntConstant(m, "MMSG_COUNT", MMSG_COUNT) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
