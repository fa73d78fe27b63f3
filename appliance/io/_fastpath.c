/*
 * appliance.io._fastpath: the compiled data plane of the NTP server (Linux).
 *
 * The pure Python modules are the specification: appliance.ntp.server (what a
 * request gets), appliance.ntp.access (restrict matching) and
 * appliance.ntp.ratelimit (the GCRA buckets and KoD pacing). This module does
 * the same for the one kind of datagram that is nearly all of a time server's
 * traffic, a plain 48-octet client request (mode 3, versions 1 to 4), and
 * hands every other datagram back to Python untouched. Differential tests
 * (tests/unit/io/test_fastpath.py) hold the two to the same answers, octet
 * for octet.
 *
 * What it adds over the Python path is only speed: one recvmmsg(2) reads up
 * to 64 datagrams, each with its kernel receive timestamp (SO_TIMESTAMPNS);
 * each reply gets its own CLOCK_REALTIME reading right before its own
 * sendto(2), as in the Python path. The reply's header fields come from
 * NtpServer.reply_prefix (called back once per second and key, so the state is
 * never interpreted twice). No thread, no global state: everything lives in
 * the Server and Limiter objects.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define NS_PER_S 1000000000LL
#define NTP_UNIX_OFFSET_S 2208988800LL
#define NEVER (-(1LL << 62))
#define STEP_SLACK_NS NS_PER_S

#define MMSG_COUNT 64
#define MAX_DATAGRAM 1024
#define CONTROL_SIZE 64
#define HEADER_LEN 48

/* access flags: appliance.ntp.access */
#define F_IGNORE (1 << 0)
#define F_NOSERVE (1 << 1)
#define F_KOD (1 << 6)
#define F_LIMITED (1 << 7)
#define F_VERSION (1 << 9)
#define F_NOTRUST (1 << 10)

enum { PASS = 0, LIMITED = 1, LIMITED_KOD = 2 };
enum { ACT_DROP = 0, ACT_REPLY = 1, ACT_KOD = 2, ACT_PUNT = 3 };

/* ---- time --------------------------------------------------------------- */

/* appliance.timebase.ntp64_from_ns, for times within int64 after the offset is added (to 2262). */
static uint64_t
ntp64_from_ns(int64_t t)
{
    int64_t total = t + NTP_UNIX_OFFSET_S * NS_PER_S;
    int64_t secs = total / NS_PER_S, rem = total % NS_PER_S;
    if (rem < 0) {
        rem += NS_PER_S;
        secs -= 1;
    }
    uint64_t frac = (((uint64_t)rem << 32) + NS_PER_S / 2) / NS_PER_S;
    return ((uint64_t)secs << 32) + frac;
}

static int64_t
realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
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

static int
Limiter_init(Limiter *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"avg_ns", "avg_tau", "min_ns", "min_tau", "kod_ns", "kod_tau", "slots", "ways",
                             "seed0", "seed1", NULL};
    long long avg_ns, avg_tau, min_ns, min_tau, kod_ns, kod_tau;
    Py_ssize_t slots, ways;
    unsigned long long seed0, seed1;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "LLLLLLnnKK", kwlist, &avg_ns, &avg_tau, &min_ns, &min_tau, &kod_ns,
                                     &kod_tau, &slots, &ways, &seed0, &seed1))
        return -1;
    if (ways < 1 || (ways & (ways - 1)) || slots < ways || (slots & (slots - 1)) || slots > (1 << 26)) {
        PyErr_SetString(PyExc_ValueError, "slots and ways must be powers of two, slots >= ways");
        return -1;
    }
    entry_t *entries = PyMem_Calloc((size_t)slots, sizeof(entry_t));
    if (entries == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < slots; i++)
        entries[i].seen = NEVER;
    PyMem_Free(self->entries);
    self->entries = entries;
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
    self->seed0 = seed0;
    self->seed1 = seed1;
    self->passed = self->limited = self->kod_sent = self->kod_suppressed = self->evictions = 0;
    return 0;
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
    if (key_arg(key, &a) < 0)
        return NULL;
    if (now <= NEVER || now >= -NEVER) {
        PyErr_SetString(PyExc_OverflowError, "now_ns must lie within +-2**62");
        return NULL;
    }
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

static PyGetSetDef Limiter_getset[] = {
    {"slots", (getter)Limiter_get_slots, NULL, "the number of clients the table remembers", NULL},
    {"passed", (getter)Limiter_get_passed, NULL, NULL, NULL},
    {"limited", (getter)Limiter_get_limited, NULL, NULL, NULL},
    {"kod_sent", (getter)Limiter_get_kod_sent, NULL, NULL, NULL},
    {"kod_suppressed", (getter)Limiter_get_kod_suppressed, NULL, NULL, NULL},
    {"evictions", (getter)Limiter_get_evictions, NULL, NULL, NULL},
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
    .tp_doc = "The rate limiter's table in C (see appliance.ntp.ratelimit)",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Limiter_init,
    .tp_dealloc = (destructor)Limiter_dealloc,
    .tp_methods = Limiter_methods,
    .tp_getset = Limiter_getset,
    .tp_as_sequence = &Limiter_as_sequence,
};

/* ---- restrict entries ------------------------------------------------------ */

typedef struct {
    addr128 mask, net;
    int ntponly, flags, is_default;
} rule_t;

/* ---- the server ------------------------------------------------------------ */

enum {
    C_RECEIVED,
    C_SERVED,
    C_KOD,
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

typedef struct {
    int64_t second; /* POSIX second the prefix was built for; INT64_MIN: none */
    uint64_t generation;
    uint8_t bytes[24];
} prefix_t;

typedef struct {
    PyObject_HEAD int fd;
    PyObject *prefix_fn; /* NtpServer.reply_prefix */
    Limiter *limiter;    /* NULL: `limited` clients go to Python */
    rule_t *v4, *v6;
    Py_ssize_t n4, n6;
    uint64_t generation;
    prefix_t *prefixes; /* [4 versions][256 polls][2: is_default] */
    long long counters[C_COUNT];
    /* recvmmsg buffers */
    struct mmsghdr msgs[MMSG_COUNT];
    struct iovec iovs[MMSG_COUNT];
    struct sockaddr_storage names[MMSG_COUNT];
    uint8_t data[MMSG_COUNT][MAX_DATAGRAM];
    uint8_t control[MMSG_COUNT][CONTROL_SIZE] __attribute__((aligned(8)));
} Server;

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
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, i), "y#y#pip", &mb, &ml, &nb, &nl, &ntponly, &flags,
                              &is_default))
            goto fail;
        if (ml != (family == 4 ? 4 : 16) || nl != ml) {
            PyErr_SetString(PyExc_ValueError, "a rule's mask and network must be 4 (IPv4) or 16 (IPv6) octets");
            goto fail;
        }
        if (family == 4) {
            rules[i].mask = (addr128){~0ULL, 0xFFFFFFFF00000000ULL | from_v4((const uint8_t *)mb).lo};
            rules[i].net = from_v4((const uint8_t *)nb);
        } else {
            rules[i].mask = from_v6((const uint8_t *)mb);
            rules[i].net = from_v6((const uint8_t *)nb);
        }
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

static int
Server_init(Server *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"fd", "v4", "v6", "prefix", "limiter", NULL};
    int fd;
    PyObject *v4, *v6, *prefix_fn, *limiter;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "iOOOO", kwlist, &fd, &v4, &v6, &prefix_fn, &limiter))
        return -1;
    if (limiter != Py_None && !PyObject_TypeCheck(limiter, &LimiterType)) {
        PyErr_SetString(PyExc_TypeError, "limiter must be a _fastpath.Limiter or None");
        return -1;
    }
    if (!PyCallable_Check(prefix_fn)) {
        PyErr_SetString(PyExc_TypeError, "prefix must be callable");
        return -1;
    }
    rule_t *r4 = NULL, *r6 = NULL;
    Py_ssize_t n4, n6;
    if (rules_from_list(v4, 4, &r4, &n4) < 0)
        return -1;
    if (rules_from_list(v6, 6, &r6, &n6) < 0) {
        PyMem_Free(r4);
        return -1;
    }
    prefix_t *prefixes = PyMem_Calloc(4 * 256 * 2, sizeof(prefix_t));
    if (prefixes == NULL) {
        PyMem_Free(r4);
        PyMem_Free(r6);
        PyErr_NoMemory();
        return -1;
    }
    for (int i = 0; i < 4 * 256 * 2; i++)
        prefixes[i].second = INT64_MIN;
    PyMem_Free(self->v4);
    PyMem_Free(self->v6);
    PyMem_Free(self->prefixes);
    self->v4 = r4;
    self->n4 = n4;
    self->v6 = r6;
    self->n6 = n6;
    self->prefixes = prefixes;
    self->generation = 1;
    self->fd = fd;
    Py_INCREF(prefix_fn);
    Py_XSETREF(self->prefix_fn, prefix_fn);
    Py_XSETREF(self->limiter, limiter == Py_None ? NULL : (Limiter *)Py_NewRef(limiter));
    memset(self->counters, 0, sizeof self->counters);
    for (int i = 0; i < MMSG_COUNT; i++) {
        struct msghdr *h = &self->msgs[i].msg_hdr;
        self->iovs[i].iov_base = self->data[i];
        self->iovs[i].iov_len = MAX_DATAGRAM;
        h->msg_name = &self->names[i];
        h->msg_iov = &self->iovs[i];
        h->msg_iovlen = 1;
        h->msg_control = self->control[i];
    }
    return 0;
}

static void
Server_dealloc(Server *self)
{
    Py_XDECREF(self->prefix_fn);
    Py_XDECREF(self->limiter);
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
            *flags = F_IGNORE;
            *is_default = 0;
            return;
        }
        rules = s->v4;
        n = s->n4;
    } else {
        if ((a.hi >> 56) == 0xFF) { /* ff00::/8 */
            *flags = F_IGNORE;
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
    *flags = F_IGNORE;
    *is_default = 0;
}

/* NtpServer.reply_prefix(version, 4, poll, is_default, rx_ns), cached per second and state generation. */
static const uint8_t *
get_prefix(Server *s, int version, int poll, int is_default, int64_t rx_ns)
{
    prefix_t *p = s->prefixes + ((version - 1) * 256 + poll) * 2 + is_default;
    int64_t second = floor_div(rx_ns, NS_PER_S);
    if (p->second == second && p->generation == s->generation)
        return p->bytes;
    PyObject *r = PyObject_CallFunction(s->prefix_fn, "iiiOL", version, 4, poll, is_default ? Py_True : Py_False,
                                        (long long)rx_ns);
    if (r == NULL)
        return NULL;
    if (!PyBytes_Check(r) || PyBytes_GET_SIZE(r) != 24) {
        Py_DECREF(r);
        PyErr_SetString(PyExc_TypeError, "the prefix callback must return 24 bytes");
        return NULL;
    }
    memcpy(p->bytes, PyBytes_AS_STRING(r), 24);
    Py_DECREF(r);
    p->second = second;
    p->generation = s->generation;
    return p->bytes;
}

/* Decide what a datagram gets; for ACT_REPLY and ACT_KOD, `out` holds the 48-octet reply (the
 * transmit timestamp, octets 40..47, still to be written for ACT_REPLY). Returns -1 with a Python
 * error set when the prefix callback failed. */
static int
decide(Server *s, const uint8_t *d, Py_ssize_t len, addr128 a, int port, int64_t rx_ns, uint8_t *out)
{
    if (len != HEADER_LEN)
        return ACT_PUNT;
    int version = (d[0] >> 3) & 7, mode = d[0] & 7;
    if (mode != 3 || version < 1 || version > 4)
        return ACT_PUNT;
    int flags, is_default;
    lookup(s, a, port == 123, &flags, &is_default);
    if ((flags & (F_IGNORE | F_NOSERVE | F_LIMITED)) == F_LIMITED && s->limiter == NULL)
        return ACT_PUNT;
    long long *c = s->counters;
    c[C_RECEIVED]++;
    if (flags & F_IGNORE) {
        c[C_IGNORE]++;
        return ACT_DROP;
    }
    if (flags & F_NOSERVE) {
        c[C_NOSERVE]++;
        return ACT_DROP;
    }
    if ((flags & F_VERSION) && version != 4) {
        c[C_VERSION_RESTRICTED]++;
        return ACT_DROP;
    }
    if (flags & F_NOTRUST) { /* a 48-octet request has no MAC */
        c[C_NOTRUST]++;
        return ACT_DROP;
    }
    if (flags & F_LIMITED) {
        int verdict = limiter_check(s->limiter, a, rx_ns, (flags & F_KOD) != 0);
        if (verdict == LIMITED_KOD) {
            c[C_KOD]++;
            /* RATE KoD: leap 3, stratum 0, the client's poll, "RATE", and the client's own transmit
             * timestamp in the reference, origin, receive and transmit fields */
            memset(out, 0, 16);
            out[0] = (uint8_t)((3 << 6) | (version << 3) | 4);
            out[2] = d[2];
            memcpy(out + 12, "RATE", 4);
            for (int k = 16; k < 48; k += 8)
                memcpy(out + k, d + 40, 8);
            return ACT_KOD;
        }
        if (verdict != PASS) {
            c[C_RATE]++;
            return ACT_DROP;
        }
    }
    const uint8_t *prefix = get_prefix(s, version, d[2], is_default, rx_ns);
    if (prefix == NULL) {
        c[C_RECEIVED]--;
        return -1;
    }
    c[C_SERVED]++;
    memcpy(out, prefix, 24);
    memcpy(out + 24, d + 40, 8);
    put64(out + 32, ntp64_from_ns(rx_ns));
    return ACT_REPLY;
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

static int64_t
rx_timestamp(struct msghdr *h)
{
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(h); cm != NULL; cm = CMSG_NXTHDR(h, cm)) {
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_TIMESTAMPNS &&
            cm->cmsg_len >= CMSG_LEN(sizeof(struct timespec))) {
            struct timespec ts;
            memcpy(&ts, CMSG_DATA(cm), sizeof ts);
            return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
        }
    }
    return 0;
}

/* serve(limit) -> list of (data, address, rx_ns) for Python to handle, or None.
 * Reads and answers up to `limit` datagrams waiting on the socket. */
static PyObject *
Server_serve(Server *self, PyObject *args)
{
    int limit;
    if (!PyArg_ParseTuple(args, "i", &limit))
        return NULL;
    PyObject *punted = NULL;
    long long *c = self->counters;
    uint8_t out[HEADER_LEN];
    int done = 0;
    while (done < limit) {
        for (int i = 0; i < MMSG_COUNT; i++) { /* what the kernel overwrote last time */
            struct msghdr *h = &self->msgs[i].msg_hdr;
            h->msg_namelen = sizeof self->names[i];
            h->msg_controllen = CONTROL_SIZE;
            h->msg_flags = 0;
        }
        int n = recvmmsg(self->fd, self->msgs, MMSG_COUNT, MSG_DONTWAIT, NULL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            if (errno == EINTR)
                continue;
            if (errno == ENOSYS || errno == EBADF || errno == ENOTSOCK) {
                Py_XDECREF(punted);
                return PyErr_SetFromErrno(PyExc_OSError);
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
            Py_ssize_t len = (Py_ssize_t)self->msgs[i].msg_len;
            struct sockaddr_storage *name = &self->names[i];
            int64_t rx_ns = rx_timestamp(h);
            if (rx_ns == 0) {
                c[C_NO_TIMESTAMP]++;
                rx_ns = realtime_ns();
            }
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
            int act = (h->msg_flags & MSG_TRUNC) ? ACT_PUNT : decide(self, d, len, a, port, rx_ns, out);
            if (act == ACT_REPLY || act == ACT_KOD) {
                if (act == ACT_REPLY) /* transmit timestamp: read right before this reply's own sendto */
                    put64(out + 40, ntp64_from_ns(realtime_ns()));
                if (sendto(self->fd, out, HEADER_LEN, 0, (struct sockaddr *)name, h->msg_namelen) < 0)
                    c[C_SEND_ERRORS]++;
            } else if (act == ACT_PUNT) {
                if (punted == NULL && (punted = PyList_New(0)) == NULL)
                    return NULL;
                PyObject *item = Py_BuildValue("(y#NL)", d, len, address_tuple(name), (long long)rx_ns);
                if (item == NULL || PyList_Append(punted, item) < 0) {
                    Py_XDECREF(item);
                    Py_DECREF(punted);
                    return NULL;
                }
                Py_DECREF(item);
            } else if (act < 0) { /* a bug in the prefix callback: report it, lose nothing else */
                PyErr_WriteUnraisable(self->prefix_fn);
            }
        }
        if (n < MMSG_COUNT)
            break;
    }
    if (punted == NULL)
        Py_RETURN_NONE;
    return punted;
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
    addr128 a;
    if (key_arg(ip, &a) < 0) {
        PyBuffer_Release(&data);
        return NULL;
    }
    uint8_t out[HEADER_LEN];
    int act = decide(self, data.buf, data.len, a, port, rx_ns, out);
    PyBuffer_Release(&data);
    if (act < 0)
        return NULL;
    if (act == ACT_REPLY)
        put64(out + 40, ntp64_from_ns(tx_ns));
    if (act == ACT_REPLY || act == ACT_KOD)
        return Py_BuildValue("(iy#)", act, out, (Py_ssize_t)HEADER_LEN);
    return Py_BuildValue("(iO)", act, Py_None);
}

/* take_counters() -> tuple of the counts since the last call (see C_* for the order), zeroing them. */
static PyObject *
Server_take_counters(Server *self, PyObject *Py_UNUSED(ignored))
{
    long long *c = self->counters;
    PyObject *t = Py_BuildValue("(LLLLLLLLLLL)", c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[10]);
    if (t != NULL)
        memset(self->counters, 0, sizeof self->counters);
    return t;
}

static PyObject *
Server_invalidate(Server *self, PyObject *Py_UNUSED(ignored))
{
    self->generation++;
    Py_RETURN_NONE;
}

static PyMethodDef Server_methods[] = {
    {"serve", (PyCFunction)Server_serve, METH_VARARGS, "serve(limit) -> datagrams left to Python, or None"},
    {"handle", (PyCFunction)Server_handle, METH_VARARGS, "handle(data, ip, port, rx_ns, tx_ns) -> (action, reply)"},
    {"take_counters", (PyCFunction)Server_take_counters, METH_NOARGS, "the counts since the last call"},
    {"invalidate", (PyCFunction)Server_invalidate, METH_NOARGS, "the served state changed: rebuild the prefixes"},
    {NULL},
};

static PyTypeObject ServerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "appliance.io._fastpath.Server",
    .tp_basicsize = sizeof(Server),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The NTP server's data plane for plain client requests (see the module docstring)",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Server_init,
    .tp_dealloc = (destructor)Server_dealloc,
    .tp_methods = Server_methods,
};

static PyObject *
fp_ntp64_from_ns(PyObject *Py_UNUSED(module), PyObject *arg)
{
    long long t = PyLong_AsLongLong(arg);
    if (t == -1 && PyErr_Occurred())
        return NULL;
    if (t > INT64_MAX - NTP_UNIX_OFFSET_S * NS_PER_S) {
        PyErr_SetString(PyExc_OverflowError, "time too late");
        return NULL;
    }
    return PyLong_FromUnsignedLongLong(ntp64_from_ns(t));
}

static PyMethodDef module_methods[] = {
    {"ntp64_from_ns", fp_ntp64_from_ns, METH_O, "appliance.timebase.ntp64_from_ns in C (for the tests)"},
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
    if (PyType_Ready(&LimiterType) < 0 || PyType_Ready(&ServerType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&fastpath_module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "Limiter", (PyObject *)&LimiterType) < 0 ||
        PyModule_AddObjectRef(m, "Server", (PyObject *)&ServerType) < 0 ||
        PyModule_AddIntConstant(m, "MMSG_COUNT", MMSG_COUNT) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
