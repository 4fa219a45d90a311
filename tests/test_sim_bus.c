/* The simulated bus: NATS subject rules, broadcast, queue groups,
 * request/reply, every fault, the strict decode of every delivery, and
 * determinism. */
#include "testutil.h"

#include "cap_encode.h"
#include "ref_effect.h"
#include "sim_bus.h"

#define MS INT64_C(1000000)

/* Pinned from the first run of this implementation (exact for the seeds used). */
#define LOSS_GOLDEN 744
#define REORDER_GOLDEN 91
#define CORRUPT_GOLDEN 149
#define SCENARIO_GOLDEN "pub 900 routed 894 dlv 894 dup 78 loss 84 last 156679123"

static cap_packet *make_hb(const char *sender, int64_t now, int32_t n)
{
    cap_packet *p = ref_packet_new("trace-1", sender, now);
    assert_non_null(p);
    Cordum__Agent__V1__Heartbeat *hb = malloc(sizeof *hb);
    assert_non_null(hb);
    cordum__agent__v1__heartbeat__init(hb);
    int ok = 1;
    hb->worker_id = ref_pb_strdup(sender, &ok);
    assert_true(ok);
    hb->active_jobs = n;
    p->payload_case = CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_HEARTBEAT;
    p->heartbeat = hb;
    return p;
}

/* ---- a tiny driver ---- */

typedef struct {
    int64_t time;
    uint32_t to;
    uint64_t msg_id;
    int dup, replay, rc;
    int32_t n; /* heartbeat active_jobs of the delivered packet, -1 if none */
    uint64_t bytes_hash; /* FNV-1a of the delivered bytes */
    size_t len;
    char reply[64];
} got;

typedef struct {
    sim_bus *bus;
    sim_queue q;
    got *g;
    size_t ng, cap;
} world;

static void world_init(world *w, uint64_t seed, const sim_dist *lat)
{
    memset(w, 0, sizeof *w);
    sim_bus_config c;
    sim_bus_config_default(&c);
    c.seed = seed;
    if (lat)
        c.latency = *lat;
    assert_int_equal(sim_bus_new(&c, &w->bus), CAP_OK);
    assert_int_equal(sim_queue_init(&w->q, 0), CAP_OK);
}

static void world_free(world *w)
{
    sim_queue_free(&w->q, sim_bus_event_release, w->bus);
    sim_bus_free(w->bus);
    free(w->g);
}

static uint32_t actor(world *w, const char *name)
{
    uint32_t id;
    assert_int_equal(sim_bus_actor(w->bus, name, &id), CAP_OK);
    return id;
}

static void pub(world *w, uint32_t from, const char *subject, int64_t now, int32_t n)
{
    cap_packet *p = make_hb(sim_bus_actor_name(w->bus, from), now, n);
    assert_int_equal(sim_bus_publish(w->bus, from, subject, NULL, p, now, &w->q), CAP_OK);
    cap_packet_free(p);
}

/* Pops and delivers every event up to `until`, recording each outcome. */
static void run(world *w, int64_t until)
{
    const sim_event *pe;
    while ((pe = sim_queue_peek(&w->q)) && pe->time <= until) {
        sim_event ev;
        assert_int_equal(sim_queue_pop(&w->q, &ev), 1);
        sim_msg m;
        cap_diag d;
        int rc = sim_bus_deliver(w->bus, &ev, ev.time, &m, &d);
        if (w->ng == w->cap) {
            w->cap = w->cap ? 2 * w->cap : 64;
            w->g = realloc(w->g, w->cap * sizeof *w->g);
            assert_non_null(w->g);
        }
        got *g = &w->g[w->ng++];
        memset(g, 0, sizeof *g);
        const sim_delivery *dl = ev.data;
        g->time = ev.time;
        g->to = dl->to;
        g->msg_id = dl->msg_id;
        g->dup = dl->duplicate;
        g->replay = dl->replay;
        g->len = dl->len;
        g->bytes_hash = UINT64_C(14695981039346656037);
        for (size_t k = 0; k < dl->len; k++)
            g->bytes_hash = (g->bytes_hash ^ dl->bytes[k]) * UINT64_C(1099511628211);
        g->rc = rc;
        g->n = -1;
        snprintf(g->reply, sizeof g->reply, "%s", dl->reply);
        if (rc == CAP_OK) {
            assert_non_null(m.packet);
            assert_int_equal(m.packet->payload_case, CORDUM__AGENT__V1__BUS_PACKET__PAYLOAD_HEARTBEAT);
            g->n = m.packet->heartbeat->active_jobs;
            sim_bus_release(w->bus, &m);
            assert_null(m.packet);
        }
        sim_delivery_free(ev.data);
    }
}

static size_t count_to(const world *w, uint32_t to)
{
    size_t n = 0;
    for (size_t i = 0; i < w->ng; i++)
        n += w->g[i].to == to && w->g[i].rc == CAP_OK;
    return n;
}

/* ---- subjects ---- */

static void test_subject_rules(void **state)
{
    (void)state;
    struct {
        const char *s;
        int subject, pattern;
    } v[] = {
        {"sys.job.submit", 1, 1}, {"a", 1, 1},        {"job.*", 0, 1},   {"job.>", 0, 1},
        {">", 0, 1},              {"*", 0, 1},        {"*.*", 0, 1},     {"a.>.b", 0, 0},
        {"", 0, 0},               {".a", 0, 0},       {"a.", 0, 0},      {"a..b", 0, 0},
        {"a b", 0, 0},            {"a\tb", 0, 0},     {"a*.b", 1, 1},    {"a.b>", 1, 1},
        {"_INBOX.3.17", 1, 1},    {"a.**", 1, 1},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        if (sim_subject_valid(v[i].s, 0) != v[i].subject || sim_subject_valid(v[i].s, 1) != v[i].pattern)
            fail_msg("subject \"%s\"", v[i].s);
    }
    assert_int_equal(sim_subject_valid(NULL, 1), 0);
    char longs[SIM_BUS_MAX_SUBJECT + 2];
    memset(longs, 'a', sizeof longs - 1);
    longs[sizeof longs - 1] = 0;
    assert_int_equal(sim_subject_valid(longs, 0), 0);
    longs[SIM_BUS_MAX_SUBJECT] = 0; /* exactly the bound: valid */
    assert_int_equal(sim_subject_valid(longs, 0), 1);
    assert_int_equal(sim_subject_valid("a.b\x7f", 1), 0);
    assert_int_equal(sim_subject_valid("a.>", 0), 0);

    struct {
        const char *p, *s;
        int m;
    } t[] = {
        {"sys.job.submit", "sys.job.submit", 1},
        {"sys.job.submit", "sys.job.result", 0},
        {"sys.job.submit", "sys.job", 0},
        {"sys.job", "sys.job.submit", 0},
        {"sys.*", "sys.heartbeat", 1},
        {"sys.*", "sys.job.submit", 0}, /* '*' is one token */
        {"sys.*", "sys", 0},
        {"*.job.*", "sys.job.cancel", 1},
        {"sys.>", "sys.job.submit", 1},
        {"sys.>", "sys.heartbeat", 1},
        {"sys.>", "sys", 0}, /* '>' needs one or more tokens */
        {">", "anything.at.all", 1},
        {">", "a", 1},
        {"*", "a", 1},
        {"*", "a.b", 0},
        {"job.*.x", "job.gpu.x", 1},
        {"job.*.x", "job.gpu.y", 0},
        {"a*.b", "a*.b", 1}, /* '*' inside a token is literal */
        {"a*.b", "ax.b", 0},
        {"sys.job.>", "sys.job.a.b.c", 1},
        {"abc", "ab", 0},
        {"ab", "abc", 0},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (sim_subject_match(t[i].p, t[i].s) != t[i].m)
            fail_msg("pattern \"%s\" subject \"%s\": want %d", t[i].p, t[i].s, t[i].m);
}

/* Every byte value inside a token, alone as a token, and after a dot:
 * space, the control characters and DEL are refused, '.' splits tokens,
 * and every other byte (those from 0x80 up included) is ordinary text. */
static void test_subject_every_byte(void **state)
{
    (void)state;
    for (unsigned c = 1; c < 256; c++) {
        int bad = c <= 0x20 || c == 0x7f;
        char in[4] = {'a', (char)c, 'b', 0}, alone[2] = {(char)c, 0};
        char after[4] = {'a', '.', (char)c, 0};
        if (sim_subject_valid(in, 0) != !bad || sim_subject_valid(in, 1) != !bad)
            fail_msg("byte 0x%02x inside a token", c);
        int wild = c == '*' || c == '>';
        int want_alone = !bad && c != '.' && !wild;
        if (sim_subject_valid(alone, 0) != want_alone ||
            sim_subject_valid(alone, 1) != (want_alone || wild))
            fail_msg("byte 0x%02x as a token", c);
        if (sim_subject_valid(after, 0) != want_alone)
            fail_msg("byte 0x%02x after a dot", c);
    }
}

/* A publish finds a literal subscription through the routing index,
 * keyed by the hash its subject scan computes: many distinct literal
 * subjects (wildcard characters inside tokens, bytes from 0x80 up), each
 * reaching exactly its own subscriber, with subject and reply copied
 * into the delivery whole. */
static void test_literal_routing(void **state)
{
    (void)state;
    world w;
    world_init(&w, 3, NULL);
    enum { N = 300 };
    uint32_t ids[N];
    char subj[N][48];
    uint32_t from = actor(&w, "publisher");
    for (int i = 0; i < N; i++) {
        char name[32];
        snprintf(name, sizeof name, "rcv-%d", i);
        ids[i] = actor(&w, name);
        const char *first = i % 3 == 0 ? "w*x" : i % 3 == 1 ? "caf\xc3\xa9" : "a>b";
        snprintf(subj[i], sizeof subj[i], "%s.%d.%s", first, i, i % 2 ? "jobs" : "x");
        assert_int_equal(sim_bus_subscribe(w.bus, ids[i], subj[i], NULL, 0, NULL), CAP_OK);
    }
    for (int i = N; i-- > 0;) {
        cap_packet *p = make_hb("publisher", i, i);
        assert_int_equal(sim_bus_publish(w.bus, from, subj[i], "_INBOX.0.1", p, i, &w.q), CAP_OK);
        cap_packet_free(p);
        const sim_event *pe = sim_queue_peek(&w.q);
        assert_non_null(pe);
        const sim_delivery *d = pe->data;
        assert_string_equal(d->subject, subj[i]);
        assert_string_equal(d->reply, "_INBOX.0.1");
    }
    run(&w, INT64_MAX);
    assert_int_equal(w.ng, N);
    for (size_t k = 0; k < w.ng; k++) {
        assert_int_equal(w.g[k].rc, CAP_OK);
        assert_int_equal(w.g[k].to, ids[w.g[k].n]); /* active_jobs carries the index */
    }
    /* One subject with more subscriptions than a bucket holds inline,
     * interleaved with a wildcard one: delivered in subscription order. */
    uint32_t order[6];
    for (int i = 0; i < 6; i++) {
        order[i] = ids[i];
        const char *pat = i == 3 ? "many.*" : "many.subs";
        assert_int_equal(sim_bus_subscribe(w.bus, ids[i], pat, NULL, 0, NULL), CAP_OK);
    }
    w.ng = 0;
    pub(&w, from, "many.subs", 1000, 1);
    run(&w, INT64_MAX);
    assert_int_equal(w.ng, 6);
    for (size_t k = 0; k < 6; k++)
        assert_int_equal(w.g[k].to, order[k]);
    world_free(&w);
}

/* ---- routing ---- */

static void test_broadcast(void **state)
{
    (void)state;
    world w;
    world_init(&w, 1, NULL);
    uint32_t wk = actor(&w, "worker-1"), s1 = actor(&w, "sched-1"), s2 = actor(&w, "sched-2"),
             mon = actor(&w, "monitor"), other = actor(&w, "other");
    assert_int_equal(sim_bus_subscribe(w.bus, s1, "sys.heartbeat", NULL, 0, NULL), CAP_OK);
    assert_int_equal(sim_bus_subscribe(w.bus, s2, "sys.heartbeat", "", 0, NULL), CAP_OK);
    assert_int_equal(sim_bus_subscribe(w.bus, mon, "sys.>", NULL, 0, NULL), CAP_OK);
    assert_int_equal(sim_bus_subscribe(w.bus, mon, "sys.*", NULL, 0, NULL), CAP_OK); /* 2nd sub: 2nd copy */
    assert_int_equal(sim_bus_subscribe(w.bus, other, "job.>", NULL, 0, NULL), CAP_OK);
    pub(&w, wk, "sys.heartbeat", 10, 7);
    run(&w, INT64_MAX);
    assert_int_equal(w.ng, 4);
    assert_int_equal(count_to(&w, s1), 1);
    assert_int_equal(count_to(&w, s2), 1);
    assert_int_equal(count_to(&w, mon), 2);
    assert_int_equal(count_to(&w, other), 0);
    for (size_t i = 0; i < w.ng; i++) {
        assert_int_equal(w.g[i].n, 7);
        assert_true(w.g[i].time == 10); /* default latency 0 */
    }
    /* Delivered in subscription order (equal times: push order). */
    assert_int_equal(w.g[0].to, s1);
    assert_int_equal(w.g[1].to, s2);
    assert_int_equal(w.g[2].to, mon);
    /* Nobody listens: counted as a drop. */
    pub(&w, wk, "nobody.here", 11, 0);
    const sim_bus_stats *st = sim_bus_get_stats(w.bus);
    assert_true(st->published == 2);
    assert_true(st->dropped[SIM_DROP_NO_SUBSCRIBER] == 1);
    assert_true(st->delivered == 4 && st->routed == 4);
    /* Bad arguments. */
    cap_packet *p = make_hb("x", 0, 0);
    assert_int_equal(sim_bus_publish(w.bus, wk, "job.*", NULL, p, 0, &w.q), CAP_EINVAL);
    assert_int_equal(sim_bus_publish(w.bus, 99, "a", NULL, p, 0, &w.q), CAP_EINVAL);
    assert_int_equal(sim_bus_publish(w.bus, wk, "a", "bad..reply", p, 0, &w.q), CAP_EINVAL);
    assert_int_equal(sim_bus_subscribe(w.bus, wk, "a..b", NULL, 0, NULL), CAP_EINVAL);
    assert_int_equal(sim_bus_subscribe(w.bus, 99, "a", NULL, 0, NULL), CAP_EINVAL);
    assert_int_equal(sim_bus_actor(w.bus, "", NULL), CAP_EINVAL);
    assert_int_equal(sim_bus_actor(w.bus, "a\nb", NULL), CAP_EINVAL);
    cap_packet_free(p);
    world_free(&w);
}

static void test_queue_group(void **state)
{
    (void)state;
    world w;
    world_init(&w, 2, NULL);
    uint32_t sched = actor(&w, "scheduler"), obs = actor(&w, "observer");
    uint32_t wk[3];
    for (int i = 0; i < 3; i++) {
        char name[32];
        snprintf(name, sizeof name, "worker-%d", i);
        wk[i] = actor(&w, name);
        assert_int_equal(sim_bus_subscribe(w.bus, wk[i], "job.default", "pool-default", 0, NULL), CAP_OK);
    }
    assert_int_equal(sim_bus_subscribe(w.bus, obs, "job.*", NULL, 0, NULL), CAP_OK);
    const int N = 3000;
    for (int i = 0; i < N; i++) {
        pub(&w, sched, "job.default", i, i);
        run(&w, INT64_MAX);
    }
    /* Every message: exactly one group member, plus the observer. */
    int per_msg_group[3001] = {0}, per_msg_obs[3001] = {0};
    for (size_t i = 0; i < w.ng; i++) {
        assert_int_equal(w.g[i].rc, CAP_OK);
        if (w.g[i].to == obs)
            per_msg_obs[w.g[i].msg_id]++;
        else
            per_msg_group[w.g[i].msg_id]++;
    }
    for (int m = 1; m <= N; m++) {
        assert_int_equal(per_msg_group[m], 1);
        assert_int_equal(per_msg_obs[m], 1);
    }
    /* Members share the load roughly evenly. */
    for (int i = 0; i < 3; i++) {
        size_t c = count_to(&w, wk[i]);
        assert_true(c > 850 && c < 1150);
    }
    /* After one member unsubscribes, the others take everything. */
    assert_int_equal(sim_bus_unsubscribe(w.bus, 0), CAP_OK);
    assert_int_equal(sim_bus_unsubscribe(w.bus, 0), CAP_EINVAL);
    size_t before = count_to(&w, wk[0]);
    for (int i = 0; i < 100; i++)
        pub(&w, sched, "job.default", N + i, i);
    run(&w, INT64_MAX);
    assert_int_equal(count_to(&w, wk[0]), before);
    world_free(&w);
}

static void test_request_reply(void **state)
{
    (void)state;
    world w;
    world_init(&w, 3, NULL);
    uint32_t client = actor(&w, "worker-1"), server = actor(&w, "scheduler");
    assert_int_equal(sim_bus_subscribe(w.bus, server, "sys.worker.handshake.challenge", "schedulers",
                                       0, NULL),
                     CAP_OK);
    cap_packet *p = make_hb("worker-1", 5, 1);
    char inbox[SIM_BUS_MAX_SUBJECT + 1];
    assert_int_equal(
        sim_bus_request(w.bus, client, "sys.worker.handshake.challenge", p, 5, &w.q, inbox), CAP_OK);
    cap_packet_free(p);
    assert_string_equal(inbox, "_INBOX.0.1");
    run(&w, INT64_MAX);
    assert_int_equal(w.ng, 1);
    assert_int_equal(w.g[0].to, server);
    assert_string_equal(w.g[0].reply, inbox);
    /* The server answers on the reply subject; only the client gets it. */
    pub(&w, server, w.g[0].reply, 6, 2);
    run(&w, INT64_MAX);
    assert_int_equal(w.ng, 2);
    assert_int_equal(w.g[1].to, client);
    assert_int_equal(w.g[1].n, 2);
    /* The inbox took one message: a second answer finds nobody. */
    pub(&w, server, inbox, 7, 3);
    run(&w, INT64_MAX);
    assert_int_equal(w.ng, 2);
    assert_true(sim_bus_get_stats(w.bus)->dropped[SIM_DROP_NO_SUBSCRIBER] == 1);
    /* Inboxes are fresh. */
    char ib2[64];
    assert_int_equal(sim_bus_new_inbox(w.bus, server, ib2, sizeof ib2), CAP_OK);
    assert_string_equal(ib2, "_INBOX.1.2");
    assert_int_equal(sim_bus_new_inbox(w.bus, server, ib2, 4), CAP_EINVAL);
    world_free(&w);
}

/* ---- faults ---- */

static void add_fault(world *w, const sim_fault *f)
{
    assert_int_equal(sim_bus_add_fault(w->bus, f, NULL), CAP_OK);
}

static void test_latency(void **state)
{
    (void)state;
    sim_dist def = {SIM_DIST_FIXED, 100, 0};
    world w;
    world_init(&w, 4, &def);
    uint32_t a = actor(&w, "a"), b = actor(&w, "b");
    assert_int_equal(sim_bus_subscribe(w.bus, b, ">", NULL, 0, NULL), CAP_OK);
    sim_fault f = {0};
    f.kind = SIM_FAULT_LATENCY;
    f.subject = "slow.>";
    f.start = 0;
    f.end = 1000 * MS;
    f.latency = (sim_dist){SIM_DIST_FIXED, 5 * MS, 0};
    add_fault(&w, &f);
    f.subject = "uni";
    f.latency = (sim_dist){SIM_DIST_UNIFORM, 10, 20};
    add_fault(&w, &f);
    pub(&w, a, "fast", 0, 0);
    pub(&w, a, "slow.x", 0, 0);
    run(&w, INT64_MAX);
    assert_true(w.g[0].time == 100);    /* default */
    assert_true(w.g[1].time == 5 * MS); /* the rule */
    /* Outside the window: default again. */
    pub(&w, a, "slow.x", 1000 * MS, 0);
    run(&w, INT64_MAX);
    assert_true(w.g[2].time == 1000 * MS + 100);
    /* Uniform stays in [10, 20] and uses both ends of the range. */
    int64_t lo = INT64_MAX, hi = 0;
    for (int i = 0; i < 500; i++) {
        pub(&w, a, "uni", 0, 0);
        run(&w, INT64_MAX);
        int64_t t = w.g[w.ng - 1].time;
        assert_true(t >= 10 && t <= 20);
        lo = t < lo ? t : lo;
        hi = t > hi ? t : hi;
    }
    assert_true(lo == 10 && hi == 20);
    /* Bad rules. */
    f.latency = (sim_dist){SIM_DIST_UNIFORM, 20, 10};
    assert_int_equal(sim_bus_add_fault(w.bus, &f, NULL), CAP_EINVAL);
    f.latency = (sim_dist){SIM_DIST_LOGNORMAL, 0, 1};
    assert_int_equal(sim_bus_add_fault(w.bus, &f, NULL), CAP_EINVAL);
    f.latency = (sim_dist){SIM_DIST_FIXED, 1, 0};
    f.end = f.start;
    assert_int_equal(sim_bus_add_fault(w.bus, &f, NULL), CAP_EINVAL);
    world_free(&w);
}

static void test_latency_distributions(void **state)
{
    (void)state;
    sim_rng r;
    sim_rng_seed(&r, 5);
    sim_dist e = {SIM_DIST_EXPONENTIAL, 1e6, 0}, l = {SIM_DIST_LOGNORMAL, 1e6, 0.5};
    assert_int_equal(sim_dist_check(&e), CAP_OK);
    assert_int_equal(sim_dist_check(&l), CAP_OK);
    double se = 0, sl = 0;
    int above = 0;
    for (int i = 0; i < 100000; i++) {
        int64_t x = sim_dist_draw(&e, &r), y = sim_dist_draw(&l, &r);
        assert_true(x >= 0 && y > 0);
        se += (double)x;
        sl += (double)y;
        above += y > 1000000;
    }
    assert_true(se / 1e5 > 0.98e6 && se / 1e5 < 1.02e6);          /* mean 1 ms */
    assert_true(sl / 1e5 > 1.12e6 && sl / 1e5 < 1.145e6);         /* median e^(s^2/2) */
    assert_true(above > 49000 && above < 51000);                  /* median 1 ms */
    sim_dist bad = {SIM_DIST_FIXED, -1, 0};
    assert_int_equal(sim_dist_check(&bad), CAP_EINVAL);
    bad = (sim_dist){(sim_dist_kind)9, 1, 1};
    assert_int_equal(sim_dist_check(&bad), CAP_EINVAL);
}

static void test_loss(void **state)
{
    (void)state;
    world w;
    world_init(&w, 6, NULL);
    uint32_t a = actor(&w, "a"), b = actor(&w, "b"), c = actor(&w, "c");
    assert_int_equal(sim_bus_subscribe(w.bus, b, "x", NULL, 0, NULL), CAP_OK);
    assert_int_equal(sim_bus_subscribe(w.bus, c, "x", NULL, 0, NULL), CAP_OK);
    sim_fault f = {0};
    f.kind = SIM_FAULT_LOSS;
    f.to = "b"; /* only deliveries to b */
    f.p = 0.25;
    f.start = 0;
    f.end = SIM_FOREVER;
    add_fault(&w, &f);
    for (int i = 0; i < 1000; i++)
        pub(&w, a, "x", i, i);
    run(&w, INT64_MAX);
    size_t gb = count_to(&w, b), gc = count_to(&w, c);
    assert_int_equal(gc, 1000);
    /* Exact for this seed (pinned from the first run), and near 750. */
    assert_int_equal(gb, LOSS_GOLDEN);
    assert_true(sim_bus_get_stats(w.bus)->dropped[SIM_DROP_LOSS] == 1000 - gb);
    /* p = 1 in a window: nothing in the window, everything after. */
    sim_fault g = f;
    g.to = "c";
    g.p = 1.0;
    g.start = 2000;
    g.end = 3000;
    add_fault(&w, &g);
    size_t before = count_to(&w, c);
    for (int i = 0; i < 10; i++)
        pub(&w, a, "x", 2000 + i * 100, 0);
    run(&w, INT64_MAX);
    assert_int_equal(count_to(&w, c), before);
    pub(&w, a, "x", 3000, 0);
    run(&w, INT64_MAX);
    assert_int_equal(count_to(&w, c), before + 1);
    f.p = 1.5;
    assert_int_equal(sim_bus_add_fault(w.bus, &f, NULL), CAP_EINVAL);
    world_free(&w);
}

static void test_duplicate(void **state)
{
    (void)state;
    world w;
    world_init(&w, 7, NULL);
    uint32_t a = actor(&w, "a"), b = actor(&w, "b");
    assert_int_equal(sim_bus_subscribe(w.bus, b, ">", NULL, 0, NULL), CAP_OK);
    sim_fault f = {0};
    f.kind = SIM_FAULT_DUPLICATE;
    f.subject = "sys.job.result";
    f.count = 2; /* duplicate the next 2 packets on the subject */
    f.start = 0;
    f.end = SIM_FOREVER;
    add_fault(&w, &f);
    pub(&w, a, "other", 0, 0);
    for (int i = 0; i < 4; i++)
        pub(&w, a, "sys.job.result", i + 1, i);
    run(&w, INT64_MAX);
    /* other once; result 0 and 1 twice; 2 and 3 once. */
    assert_int_equal(w.ng, 7);
    int per[6] = {0}, dups = 0;
    for (size_t i = 0; i < w.ng; i++) {
        per[w.g[i].msg_id]++;
        dups += w.g[i].dup;
    }
    assert_int_equal(per[1], 1);
    assert_int_equal(per[2], 2);
    assert_int_equal(per[3], 2);
    assert_int_equal(per[4], 1);
    assert_int_equal(per[5], 1);
    assert_int_equal(dups, 2);
    assert_true(sim_bus_get_stats(w.bus)->duplicated == 2);
    /* Probability 1 on another subject: every packet twice. */
    f.subject = "always";
    f.count = 0;
    f.p = 1.0;
    add_fault(&w, &f);
    size_t n0 = w.ng;
    for (int i = 0; i < 5; i++)
        pub(&w, a, "always", 10, i);
    run(&w, INT64_MAX);
    assert_int_equal(w.ng - n0, 10);
    world_free(&w);
}

/* The copy of msg_id delivered to `to` (replay 0: the first, 1: the
 * replay), or NULL. */
static const got *find_copy(const world *w, uint64_t msg_id, uint32_t to, int replay)
{
    for (size_t i = 0; i < w->ng; i++)
        if (w->g[i].msg_id == msg_id && w->g[i].to == to && w->g[i].replay == replay)
            return &w->g[i];
    return NULL;
}

static void test_replay(void **state)
{
    (void)state;
    world w;
    sim_dist lat = {SIM_DIST_FIXED, (double)MS, 0};
    world_init(&w, 9, &lat);
    uint32_t a = actor(&w, "a"), b = actor(&w, "b"), c = actor(&w, "c");
    assert_int_equal(sim_bus_subscribe(w.bus, b, ">", NULL, 0, NULL), CAP_OK);
    assert_int_equal(sim_bus_subscribe(w.bus, c, "sys.job.submit", NULL, 0, NULL), CAP_OK);
    const int64_t after = INT64_C(30000000000);
    sim_fault f = {0};
    f.kind = SIM_FAULT_REPLAY;
    f.subject = "sys.job.submit";
    f.to = "b"; /* c gets no replay */
    f.count = 2;
    f.after = after;
    f.start = 10;
    f.end = SIM_FOREVER;
    add_fault(&w, &f);
    pub(&w, a, "sys.job.submit", 5, 0); /* msg 1: before the rule starts */
    pub(&w, a, "other", 10, 1);         /* msg 2: another subject */
    for (int i = 0; i < 4; i++)         /* msgs 3..6: the next 2 (3, 4) are replayed */
        pub(&w, a, "sys.job.submit", 20 + i, 2 + i);
    run(&w, INT64_MAX);
    /* b: 6 first copies + 2 replays; c: 5 first copies. */
    assert_int_equal(w.ng, 13);
    assert_int_equal(count_to(&w, b), 8);
    assert_int_equal(count_to(&w, c), 5);
    const sim_bus_stats *st = sim_bus_get_stats(w.bus);
    assert_true(st->replayed == 2 && st->duplicated == 0 && st->routed == 13);
    for (uint64_t m = 1; m <= 6; m++) {
        const got *first = find_copy(&w, m, b, 0), *again = find_copy(&w, m, b, 1);
        assert_non_null(first);
        assert_int_equal(first->time, (m == 1 ? 5 : m == 2 ? 10 : 20 + (int64_t)m - 3) + MS);
        assert_null(find_copy(&w, m, c, 1));
        if (m != 3 && m != 4) {
            assert_null(again);
            continue;
        }
        /* byte for byte, to the same receiver, `after` later, decoded like the first */
        assert_non_null(again);
        assert_int_equal(again->rc, CAP_OK);
        assert_int_equal(again->time, first->time + after);
        assert_int_equal(again->len, first->len);
        assert_true(again->bytes_hash == first->bytes_hash);
        assert_int_equal(again->n, first->n);
        assert_int_equal(again->dup, 0);
    }
    /* The count is used up: nothing more is replayed. */
    size_t n0 = w.ng;
    pub(&w, a, "sys.job.submit", 100, 9);
    run(&w, INT64_MAX);
    assert_int_equal(w.ng - n0, 2);
    assert_true(sim_bus_get_stats(w.bus)->replayed == 2);

    /* A sender filter: only c's publishes use the count up; a duration ends it. */
    sim_fault g = {0};
    g.kind = SIM_FAULT_REPLAY;
    g.from = "c";
    g.count = 5;
    g.after = 7;
    g.start = 1000;
    g.end = 2000;
    add_fault(&w, &g);
    n0 = w.ng;
    pub(&w, a, "x.y", 1000, 1); /* not from c */
    pub(&w, c, "x.y", 1500, 2); /* replayed to b */
    pub(&w, c, "x.y", 2000, 3); /* the rule has ended */
    run(&w, INT64_MAX);
    assert_int_equal(w.ng - n0, 4);
    assert_true(sim_bus_get_stats(w.bus)->replayed == 3);
    const got *late = find_copy(&w, 9, b, 1); /* msgs 8, 9, 10 are the three above */
    assert_non_null(late);
    assert_int_equal(late->n, 2);
    assert_int_equal(late->time, 1500 + MS + 7);
    assert_null(find_copy(&w, 8, b, 1));
    assert_null(find_copy(&w, 10, b, 1));

    /* Bad rules. */
    sim_fault bad = f;
    bad.count = 0;
    assert_int_equal(sim_bus_add_fault(w.bus, &bad, NULL), CAP_EINVAL);
    bad = f;
    bad.after = 0;
    assert_int_equal(sim_bus_add_fault(w.bus, &bad, NULL), CAP_EINVAL);
    bad.after = SIM_BUS_MAX_DELAY + 1;
    assert_int_equal(sim_bus_add_fault(w.bus, &bad, NULL), CAP_EINVAL);
    world_free(&w);

    /* Room: a publish a replay rule will take needs 3 events per target. */
    sim_bus_config cfg;
    sim_bus_config_default(&cfg);
    sim_bus *bus;
    assert_int_equal(sim_bus_new(&cfg, &bus), CAP_OK);
    sim_queue q;
    assert_int_equal(sim_queue_init(&q, 2), CAP_OK);
    assert_int_equal(sim_bus_actor(bus, "a", &a), CAP_OK);
    assert_int_equal(sim_bus_actor(bus, "b", &b), CAP_OK);
    assert_int_equal(sim_bus_subscribe(bus, b, ">", NULL, 0, NULL), CAP_OK);
    f.to = NULL;
    f.start = 0;
    assert_int_equal(sim_bus_add_fault(bus, &f, NULL), CAP_OK);
    const uint8_t junk[] = {1};
    assert_int_equal(sim_bus_publish_bytes(bus, a, "sys.job.submit", NULL, junk, 1, 0, &q),
                     CAP_EFULL);
    assert_true(sim_bus_get_stats(bus)->published == 0);
    assert_int_equal(sim_bus_publish_bytes(bus, a, "other", NULL, junk, 1, 0, &q), CAP_OK);
    assert_int_equal(sim_queue_len(&q), 1);
    sim_queue_free(&q, sim_bus_event_release, bus);
    sim_bus_free(bus);
}

static void test_reorder(void **state)
{
    (void)state;
    world w;
    world_init(&w, 8, NULL);
    uint32_t a = actor(&w, "a"), b = actor(&w, "b");
    assert_int_equal(sim_bus_subscribe(w.bus, b, "x", NULL, 0, NULL), CAP_OK);
    sim_fault f = {0};
    f.kind = SIM_FAULT_REORDER;
    f.window = 1000;
    f.start = 0;
    f.end = SIM_FOREVER;
    add_fault(&w, &f);
    /* 200 packets 10 ns apart with up to 1000 ns extra: some overtake. */
    for (int i = 0; i < 200; i++)
        pub(&w, a, "x", i * 10, i);
    run(&w, INT64_MAX);
    assert_int_equal(w.ng, 200);
    int inversions = 0;
    for (size_t i = 0; i < w.ng; i++) {
        int64_t sent = (int64_t)(w.g[i].msg_id - 1) * 10;
        assert_true(w.g[i].time >= sent && w.g[i].time <= sent + 1000);
        if (i && w.g[i].msg_id < w.g[i - 1].msg_id)
            inversions++;
    }
    assert_int_equal(inversions, REORDER_GOLDEN);
    assert_true(inversions > 0);
    f.window = -1;
    assert_int_equal(sim_bus_add_fault(w.bus, &f, NULL), CAP_EINVAL);
    world_free(&w);
}

static void test_partition(void **state)
{
    (void)state;
    world w;
    world_init(&w, 9, NULL);
    sim_dist d = {SIM_DIST_FIXED, 0, 0};
    (void)d;
    uint32_t a = actor(&w, "a"), b = actor(&w, "b"), c = actor(&w, "c");
    for (uint32_t i = 0; i < 3; i++)
        assert_int_equal(sim_bus_subscribe(w.bus, i, "x", NULL, 0, NULL), CAP_OK);
    uint32_t fid;
    assert_int_equal(sim_bus_partition(w.bus, "a", "b", 100, SIM_FOREVER, &fid), CAP_OK);
    pub(&w, a, "x", 50, 0); /* before: everyone (a gets its own) */
    run(&w, INT64_MAX);
    assert_int_equal(w.ng, 3);
    pub(&w, a, "x", 100, 0); /* a -> b cut; a -> c and a -> a fine */
    pub(&w, b, "x", 100, 0); /* b -> a cut, both ways */
    run(&w, INT64_MAX);
    assert_int_equal(count_to(&w, b), 2); /* 50 from a, 100 from itself */
    assert_int_equal(count_to(&w, a), 2); /* 50 and 100 from itself */
    assert_int_equal(count_to(&w, c), 3);
    assert_true(sim_bus_get_stats(w.bus)->dropped[SIM_DROP_PARTITION] == 2);
    /* Heal: traffic flows again. */
    assert_int_equal(sim_bus_heal(w.bus, "b", "a", 200), 1);
    assert_int_equal(sim_bus_heal(w.bus, "b", "a", 200), 0);
    pub(&w, a, "x", 200, 0);
    run(&w, INT64_MAX);
    assert_int_equal(count_to(&w, b), 3);
    /* In flight when a partition starts: dropped at delivery. Isolate c
     * from everyone from t=300; a packet sent at 250 arrives at 350. */
    sim_fault lat = {0};
    lat.kind = SIM_FAULT_LATENCY;
    lat.start = 0;
    lat.end = SIM_FOREVER;
    lat.latency = (sim_dist){SIM_DIST_FIXED, 100, 0};
    add_fault(&w, &lat);
    assert_int_equal(sim_bus_partition(w.bus, "c", NULL, 300, 400, NULL), CAP_OK);
    size_t cb = count_to(&w, c), bb = count_to(&w, b);
    pub(&w, a, "x", 250, 0);
    run(&w, INT64_MAX);
    assert_int_equal(count_to(&w, c), cb);
    assert_int_equal(count_to(&w, b), bb + 1);
    assert_int_equal(w.g[w.ng - 1].rc == SIM_BUS_DROPPED || w.g[w.ng - 2].rc == SIM_BUS_DROPPED, 1);
    /* After the window, c hears again. */
    pub(&w, a, "x", 400, 0);
    run(&w, INT64_MAX);
    assert_int_equal(count_to(&w, c), cb + 1);
    assert_int_equal(sim_bus_partition(w.bus, NULL, "a", 0, 1, NULL), CAP_EINVAL);
    world_free(&w);
}

static void test_skew(void **state)
{
    (void)state;
    world w;
    world_init(&w, 10, NULL);
    uint32_t a = actor(&w, "a"), b = actor(&w, "b");
    assert_int_equal(sim_bus_set_skew(w.bus, b, -250 * MS), CAP_OK);
    assert_true(sim_bus_local_time(w.bus, a, 1000 * MS) == 1000 * MS);
    assert_true(sim_bus_local_time(w.bus, b, 1000 * MS) == 750 * MS);
    assert_int_equal(sim_bus_set_skew(w.bus, 7, 1), CAP_EINVAL);
    assert_int_equal(sim_bus_set_skew(w.bus, a, INT64_MAX), CAP_OK);
    assert_true(sim_bus_local_time(w.bus, a, 5) == INT64_MAX); /* saturates */
    /* The delivery reports the receiver's clock. */
    assert_int_equal(sim_bus_subscribe(w.bus, b, "x", NULL, 0, NULL), CAP_OK);
    pub(&w, a, "x", 1000 * MS, 0);
    sim_event ev;
    assert_int_equal(sim_queue_pop(&w.q, &ev), 1);
    sim_msg m;
    assert_int_equal(sim_bus_deliver(w.bus, &ev, ev.time, &m, NULL), CAP_OK);
    assert_true(m.local_time == 750 * MS);
    sim_bus_release(w.bus, &m);
    sim_delivery_free(ev.data);
    world_free(&w);
}

static void test_corrupt_and_decode_failure(void **state)
{
    (void)state;
    world w;
    world_init(&w, 11, NULL);
    uint32_t a = actor(&w, "a"), b = actor(&w, "b");
    assert_int_equal(sim_bus_subscribe(w.bus, b, ">", NULL, 0, NULL), CAP_OK);
    sim_fault f = {0};
    f.kind = SIM_FAULT_CORRUPT;
    f.subject = "noisy";
    f.p = 1.0;
    f.start = 0;
    f.end = SIM_FOREVER;
    add_fault(&w, &f);
    for (int i = 0; i < 200; i++)
        pub(&w, a, "noisy", i, i);
    run(&w, INT64_MAX);
    const sim_bus_stats *st = sim_bus_get_stats(w.bus);
    assert_true(st->corrupted == 200);
    assert_true(st->decode_failures + st->delivered == 200);
    assert_int_equal(st->decode_failures, CORRUPT_GOLDEN);
    assert_true(st->decode_failures > 100);
    /* Garbage bytes: a decode failure with the decoder's error. */
    const uint8_t junk[] = {0x0a, 0x05, 'a'}; /* field 1 claims 5 bytes, has 1 */
    assert_int_equal(sim_bus_publish_bytes(w.bus, a, "clean", NULL, junk, sizeof junk, 0, &w.q), CAP_OK);
    sim_event ev;
    assert_int_equal(sim_queue_pop(&w.q, &ev), 1);
    sim_msg m;
    cap_diag d;
    assert_int_equal(sim_bus_deliver(w.bus, &ev, ev.time, &m, &d), CAP_EMALFORMED);
    assert_null(m.packet);
    assert_int_equal(d.err, CAP_EMALFORMED);
    assert_true(st->decode_failures == CORRUPT_GOLDEN + 1);
    sim_delivery_free(ev.data);
    /* Strict: an unknown field in an otherwise good packet is refused. */
    cap_packet *p = make_hb("a", 0, 1);
    uint8_t *bytes = NULL;
    size_t len = 0;
    assert_int_equal(cap_encode(&p->base, &bytes, &len), CAP_OK);
    cap_packet_free(p);
    uint8_t *more = malloc(len + 2);
    assert_non_null(more);
    memcpy(more, bytes, len);
    more[len] = (7 << 3) | 0; /* field 7, varint: unknown */
    more[len + 1] = 1;
    assert_int_equal(sim_bus_publish_bytes(w.bus, a, "clean", NULL, more, len + 2, 0, &w.q), CAP_OK);
    assert_int_equal(sim_queue_pop(&w.q, &ev), 1);
    assert_int_equal(sim_bus_deliver(w.bus, &ev, ev.time, &m, &d), CAP_EMALFORMED);
    sim_delivery_free(ev.data);
    free(bytes);
    free(more);
    world_free(&w);
}

/* Delivers the next queued event; returns sim_bus_deliver's result. */
static int deliver_next(world *w, sim_event *ev, sim_msg *m)
{
    assert_int_equal(sim_queue_pop(&w->q, ev), 1);
    cap_diag d;
    return sim_bus_deliver(w->bus, ev, ev->time, m, &d);
}

/* A heartbeat with `ncaps` capabilities of 60 bytes each: its unpacked
 * form takes about ncaps * 70 bytes of arena. */
static void pub_big(world *w, uint32_t from, const char *subject, size_t ncaps)
{
    cap_packet *p = make_hb(sim_bus_actor_name(w->bus, from), 0, 7);
    Cordum__Agent__V1__Heartbeat *hb = p->heartbeat;
    hb->capabilities = calloc(ncaps, sizeof *hb->capabilities);
    assert_non_null(hb->capabilities);
    hb->n_capabilities = ncaps;
    for (size_t i = 0; i < ncaps; i++) {
        char cap[80];
        snprintf(cap, sizeof cap, "capability-%06zu-%046d", i, 0);
        int ok = 1;
        hb->capabilities[i] = ref_pb_strdup(cap, &ok);
        assert_true(ok);
    }
    assert_int_equal(sim_bus_publish(w->bus, from, subject, NULL, p, 0, &w->q), CAP_OK);
    cap_packet_free(p);
}

/* Delivered packets are lent from the bus's arena: several may be out at
 * once and stay intact until released; the arena is reused for the next
 * deliveries, and a huge packet's memory (arena and encode buffer) is
 * given back at its release. */
static void test_delivered_packets_are_lent(void **state)
{
    (void)state;
    world w;
    world_init(&w, 12, NULL);
    uint32_t a = actor(&w, "a"), b = actor(&w, "b");
    assert_int_equal(sim_bus_subscribe(w.bus, b, "x", NULL, 0, NULL), CAP_OK);
    assert_true(sim_bus_held(w.bus) == 0);
    for (int i = 0; i < 3; i++)
        pub(&w, a, "x", i, 40 + i);
    /* Two out at once: the second decode does not disturb the first. */
    sim_event e1, e2, e3;
    sim_msg m1, m2, m3;
    assert_int_equal(deliver_next(&w, &e1, &m1), CAP_OK);
    assert_int_equal(deliver_next(&w, &e2, &m2), CAP_OK);
    assert_int_equal(m1.packet->heartbeat->active_jobs, 40);
    assert_int_equal(m2.packet->heartbeat->active_jobs, 41);
    assert_string_equal(m1.packet->heartbeat->worker_id, "a");
    size_t held = sim_bus_held(w.bus);
    assert_true(held > 0 && held <= SIM_BUS_ARENA_KEEP);
    sim_bus_release(w.bus, &m1);
    assert_null(m1.packet);
    sim_bus_release(w.bus, &m1); /* twice: ignored */
    assert_int_equal(m2.packet->heartbeat->active_jobs, 41); /* m2 still out: intact */
    sim_bus_release(w.bus, &m2);
    /* Everything back: the next packet reuses the same block. */
    assert_int_equal(deliver_next(&w, &e3, &m3), CAP_OK);
    assert_int_equal(m3.packet->heartbeat->active_jobs, 42);
    assert_true(sim_bus_held(w.bus) == held);
    sim_bus_release(w.bus, &m3);
    sim_delivery_free(e1.data);
    sim_delivery_free(e2.data);
    sim_delivery_free(e3.data);

    /* A packet unpacking into more than the bound: held while it is out,
     * given back at its release (its encode buffer at its publish); the
     * next small packets fit in one block within the bound. */
    pub_big(&w, a, "x", 1000);
    assert_int_equal(deliver_next(&w, &e1, &m1), CAP_OK);
    assert_true(m1.packet->heartbeat->n_capabilities == 1000);
    assert_string_equal(m1.packet->heartbeat->capabilities[999],
                        "capability-000999-0000000000000000000000000000000000000000000000");
    assert_true(sim_bus_held(w.bus) > SIM_BUS_ARENA_KEEP);
    sim_bus_release(w.bus, &m1);
    assert_true(sim_bus_held(w.bus) == 0);
    sim_delivery_free(e1.data);
    for (int i = 0; i < 50; i++) {
        pub(&w, a, "x", 100 + i, i);
        assert_int_equal(deliver_next(&w, &e1, &m1), CAP_OK);
        assert_int_equal(m1.packet->heartbeat->active_jobs, i);
        sim_bus_release(w.bus, &m1);
        sim_delivery_free(e1.data);
        /* at most SIM_BUS_ARENA_KEEP of arena and as much of encode buffer */
        assert_true(sim_bus_held(w.bus) <= 2 * SIM_BUS_ARENA_KEEP);
        assert_true(sim_bus_held(w.bus) > 0);
    }
    /* A decode failure with nothing out leaves the arena reusable. */
    const uint8_t junk[] = {0x0a, 0x05, 'a'};
    assert_int_equal(sim_bus_publish_bytes(w.bus, a, "x", NULL, junk, sizeof junk, 0, &w.q), CAP_OK);
    assert_int_equal(deliver_next(&w, &e1, &m1), CAP_EMALFORMED);
    assert_null(m1.packet);
    sim_bus_release(w.bus, &m1); /* no packet: ignored */
    sim_delivery_free(e1.data);
    world_free(&w);
}

static void observe_publish(void *ctx, int64_t now, const sim_publish_strings *s,
                            const uint8_t *bytes, size_t len)
{
    (void)now, (void)bytes;
    /* the lengths handed over are the strings' own */
    assert_int_equal(s->from_len, strlen(s->from));
    assert_int_equal(s->subject_len, strlen(s->subject));
    assert_int_equal(s->reply_len, strlen(s->reply));
    *(size_t *)ctx += len;
}

static void test_full_and_observer(void **state)
{
    (void)state;
    sim_bus_config c;
    sim_bus_config_default(&c);
    size_t seen = 0;
    c.on_publish = observe_publish;
    c.ctx = &seen;
    sim_bus *bus;
    assert_int_equal(sim_bus_new(&c, &bus), CAP_OK);
    sim_queue q;
    assert_int_equal(sim_queue_init(&q, 3), CAP_OK);
    uint32_t a, b;
    assert_int_equal(sim_bus_actor(bus, "a", &a), CAP_OK);
    assert_int_equal(sim_bus_actor(bus, "b", &b), CAP_OK);
    assert_int_equal(sim_bus_subscribe(bus, b, "x", NULL, 0, NULL), CAP_OK);
    assert_int_equal(sim_bus_subscribe(bus, b, "x", NULL, 0, NULL), CAP_OK);
    const uint8_t junk[] = {1};
    /* 2 targets need room for 4 events (duplicates included): refused,
     * nothing counted. */
    assert_int_equal(sim_bus_publish_bytes(bus, a, "x", NULL, junk, 1, 0, &q), CAP_EFULL);
    assert_true(sim_bus_get_stats(bus)->published == 0);
    assert_int_equal(seen, 0);
    assert_int_equal(sim_bus_unsubscribe(bus, 1), CAP_OK);
    assert_int_equal(sim_bus_publish_bytes(bus, a, "x", NULL, junk, 1, 0, &q), CAP_OK);
    assert_int_equal(seen, 1);
    assert_int_equal(sim_queue_len(&q), 1);
    sim_queue_free(&q, sim_bus_event_release, bus); /* frees the pending delivery */
    sim_bus_free(bus);
    c.latency.kind = (sim_dist_kind)42;
    assert_int_equal(sim_bus_new(&c, &bus), CAP_EINVAL);
}

typedef struct {
    char from[64], subject[64], reply[64];
    int calls;
} seen_strings;

static void observe_strings(void *ctx, int64_t now, const sim_publish_strings *s,
                            const uint8_t *bytes, size_t len)
{
    (void)now, (void)bytes, (void)len;
    seen_strings *o = ctx;
    assert_int_equal(s->from_len, strlen(s->from));
    assert_int_equal(s->subject_len, strlen(s->subject));
    assert_int_equal(s->reply_len, strlen(s->reply));
    snprintf(o->from, sizeof o->from, "%s", s->from);
    snprintf(o->subject, sizeof o->subject, "%s", s->subject);
    snprintf(o->reply, sizeof o->reply, "%s", s->reply);
    o->calls++;
}

/* A bus made with c and a queue for it: actor `from` (*a) and actor "b",
 * which subscribes to pattern. */
static sim_bus *observed_bus(const sim_bus_config *c, sim_queue *q, const char *from,
                             const char *pattern, uint32_t *a)
{
    sim_bus *bus;
    assert_int_equal(sim_bus_new(c, &bus), CAP_OK);
    assert_int_equal(sim_queue_init(q, 64), CAP_OK);
    uint32_t b;
    assert_int_equal(sim_bus_actor(bus, from, a), CAP_OK);
    assert_int_equal(sim_bus_actor(bus, "b", &b), CAP_OK);
    assert_int_equal(sim_bus_subscribe(bus, b, pattern, NULL, 0, NULL), CAP_OK);
    return bus;
}

/* The publish observer is handed the sender, subject and reply with their
 * lengths, the same whether the subject is scanned or remembered. */
static void test_publish_observer_strings(void **state)
{
    (void)state;
    sim_bus_config c;
    sim_bus_config_default(&c);
    seen_strings o = {0};
    c.on_publish = observe_strings;
    c.ctx = &o;
    sim_queue q;
    uint32_t a;
    sim_bus *bus = observed_bus(&c, &q, "a-sender-with-a-long-name", "job.>", &a);
    const uint8_t junk[] = {1};
    for (int i = 0; i < 4; i++) { /* the subject's memo is made on the way */
        const char *reply = i % 2 ? "_INBOX.reply.7" : NULL;
        assert_int_equal(sim_bus_publish_bytes(bus, a, "job.tools.x", reply, junk, 1, 0, &q), CAP_OK);
        assert_int_equal(o.calls, i + 1);
        assert_string_equal(o.from, "a-sender-with-a-long-name");
        assert_string_equal(o.subject, "job.tools.x");
        assert_string_equal(o.reply, reply ? reply : "");
    }
    sim_queue_free(&q, sim_bus_event_release, bus);
    sim_bus_free(bus);
}

/* ---- routing shortcuts: memos, actor index, delivery blocks ---- */

/* The subjects a publish found before are remembered with their routing:
 * what is delivered must still follow every subscription made or removed
 * since, for subjects seen often, once, or too long to remember. */
static void test_route_memo(void **state)
{
    (void)state;
    world w;
    world_init(&w, 5, NULL);
    uint32_t from = actor(&w, "publisher"), r1 = actor(&w, "rcv-1"), r2 = actor(&w, "rcv-2");
    const sim_bus_stats *st = sim_bus_get_stats(w.bus);
    /* No subscriber yet: dropped each time, also once remembered. */
    for (int i = 0; i < 3; i++)
        pub(&w, from, "memo.subject", i, i);
    assert_true(st->dropped[SIM_DROP_NO_SUBSCRIBER] == 3);
    /* A subscription made after: the next publish reaches it. */
    uint32_t s1 = 0, s2 = 0;
    assert_int_equal(sim_bus_subscribe(w.bus, r1, "memo.subject", NULL, 0, &s1), CAP_OK);
    for (int i = 0; i < 3; i++)
        pub(&w, from, "memo.subject", 10 + i, i);
    run(&w, INT64_MAX);
    assert_int_equal(w.ng, 3);
    assert_int_equal(count_to(&w, r1), 3);
    /* A second subscription on the remembered subject, then the first
     * removed. */
    assert_int_equal(sim_bus_subscribe(w.bus, r2, "memo.subject", NULL, 0, &s2), CAP_OK);
    pub(&w, from, "memo.subject", 20, 0);
    run(&w, INT64_MAX);
    assert_int_equal(count_to(&w, r1), 4);
    assert_int_equal(count_to(&w, r2), 1);
    assert_int_equal(sim_bus_unsubscribe(w.bus, s1), CAP_OK);
    pub(&w, from, "memo.subject", 21, 0);
    run(&w, INT64_MAX);
    assert_int_equal(count_to(&w, r1), 4);
    assert_int_equal(count_to(&w, r2), 2);
    /* Many subjects seen once between the frequent ones, and one longer
     * than a memo holds: each goes to its own subscriber. */
    enum { N = 40 };
    uint32_t ids[N];
    char subj[N][80];
    for (int i = 0; i < N; i++) {
        char name[32];
        snprintf(name, sizeof name, "once-%d", i);
        ids[i] = actor(&w, name);
        snprintf(subj[i], sizeof subj[i], i == N - 1 ? "a.subject.longer.than.any.memo.holds.%d" : "once.%d",
                 i);
        assert_int_equal(sim_bus_subscribe(w.bus, ids[i], subj[i], NULL, 0, NULL), CAP_OK);
    }
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < N; i++) {
            pub(&w, from, subj[i], 100 + i, i);
            pub(&w, from, "memo.subject", 100 + i, 0);
            pub(&w, from, subj[N - 1], 100 + i, N - 1);
        }
    run(&w, INT64_MAX);
    for (int i = 0; i < N - 1; i++)
        assert_int_equal(count_to(&w, ids[i]), 3);
    assert_int_equal(count_to(&w, ids[N - 1]), 3 + 3 * N);
    assert_int_equal(count_to(&w, r2), 2 + 3 * N);
    /* Subjects close to remembered ones are still checked. */
    cap_packet *p = make_hb("publisher", 0, 0);
    const char *bad[] = {"memo.subject.", "memo..subject", "memo.subject ", "memo.*", ""};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(sim_bus_publish(w.bus, from, bad[i], NULL, p, 0, &w.q), CAP_EINVAL);
    assert_int_equal(sim_bus_publish(w.bus, from, NULL, NULL, p, 0, &w.q), CAP_EINVAL);
    cap_packet_free(p);
    world_free(&w);
}

/* Actor ids: in order of first mention, found again by name, at most
 * SIM_BUS_MAX_ACTORS. */
static void test_actor_ids(void **state)
{
    (void)state;
    world w;
    world_init(&w, 1, NULL);
    char name[32];
    for (uint32_t i = 0; i < SIM_BUS_MAX_ACTORS; i++) {
        snprintf(name, sizeof name, "actor-%u", (unsigned)i);
        assert_int_equal(actor(&w, name), i);
    }
    for (uint32_t i = 0; i < SIM_BUS_MAX_ACTORS; i += 7) {
        snprintf(name, sizeof name, "actor-%u", (unsigned)i);
        assert_int_equal(actor(&w, name), i);
        assert_string_equal(sim_bus_actor_name(w.bus, i), name);
    }
    uint32_t id = 99;
    assert_int_equal(sim_bus_actor(w.bus, "one-too-many", &id), CAP_EFULL);
    assert_int_equal(id, 99);
    world_free(&w);
}

/* A queue group of one still takes one draw of "bus.route" per publish,
 * as a larger group does: the picks of a three-member group, interleaved
 * with a one-member group, are those of the stream drawn in that order. */
static void test_group_of_one_draws(void **state)
{
    (void)state;
    const uint64_t seed = 77;
    world w;
    world_init(&w, seed, NULL);
    uint32_t from = actor(&w, "scheduler"), solo = actor(&w, "solo");
    uint32_t trio[3];
    for (int i = 0; i < 3; i++) {
        char name[32];
        snprintf(name, sizeof name, "trio-%d", i);
        trio[i] = actor(&w, name);
        assert_int_equal(sim_bus_subscribe(w.bus, trio[i], "job.trio", "trio", 0, NULL), CAP_OK);
    }
    assert_int_equal(sim_bus_subscribe(w.bus, solo, "job.solo", "solo", 0, NULL), CAP_OK);
    sim_rng expect;
    sim_rng_stream(&expect, seed, "bus.route");
    enum { N = 200 };
    for (int i = 0; i < N; i++) {
        pub(&w, from, "job.solo", i, i);
        assert_true(sim_rng_below(&expect, 1) == 0);
        pub(&w, from, "job.trio", i, i);
        uint64_t pick = sim_rng_below(&expect, 3);
        run(&w, INT64_MAX);
        assert_int_equal(w.ng, 2 * (size_t)(i + 1));
        assert_int_equal(w.g[w.ng - 2].to, solo);
        assert_int_equal(w.g[w.ng - 1].to, trio[pick]);
    }
    world_free(&w);
}

/* Deliveries small and large, kept after the bus is freed: each still
 * holds its subject, reply and bytes, and frees cleanly (the sanitizer
 * builds check the memory). */
static void test_delivery_outlives_bus(void **state)
{
    (void)state;
    world w;
    world_init(&w, 9, NULL);
    uint32_t a = actor(&w, "a"), b = actor(&w, "b");
    assert_int_equal(sim_bus_subscribe(w.bus, b, "x.y", NULL, 0, NULL), CAP_OK);
    static uint8_t big[5000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i * 7);
    const size_t lens[] = {1, 200, sizeof big, 0, 300};
    enum { N = sizeof lens / sizeof *lens };
    for (int i = 0; i < N; i++)
        assert_int_equal(sim_bus_publish_bytes(w.bus, a, "x.y", i % 2 ? "_INBOX.0.7" : NULL, big, lens[i], i,
                                               &w.q),
                         CAP_OK);
    sim_event ev[N];
    for (int i = 0; i < N; i++)
        assert_int_equal(sim_queue_pop(&w.q, &ev[i]), 1);
    /* One back before the bus goes (reused or freed), the rest after. */
    sim_delivery_free(ev[0].data);
    sim_queue_free(&w.q, sim_bus_event_release, w.bus);
    sim_bus_free(w.bus);
    for (int i = 1; i < N; i++) {
        const sim_delivery *d = ev[i].data;
        assert_true(d->msg_id == (uint64_t)i + 1);
        assert_string_equal(d->subject, "x.y");
        assert_string_equal(d->reply, i % 2 ? "_INBOX.0.7" : "");
        assert_int_equal(d->len, lens[i]);
        assert_memory_equal(d->bytes, big, lens[i]);
        sim_delivery_free(ev[i].data);
    }
    sim_delivery_free(NULL);
    free(w.g);
}

/* Delivery blocks are reused: many rounds of publish and deliver keep
 * every delivery's own bytes. */
static void test_delivery_blocks_reused(void **state)
{
    (void)state;
    world w;
    world_init(&w, 4, NULL);
    uint32_t a = actor(&w, "sender"), r = actor(&w, "receiver");
    assert_int_equal(sim_bus_subscribe(w.bus, r, "hb.*", NULL, 0, NULL), CAP_OK);
    for (int round = 0; round < 50; round++) {
        for (int i = 0; i < 20; i++) {
            char subj[32];
            snprintf(subj, sizeof subj, "hb.%d", (round * 20 + i) % 7);
            pub(&w, a, subj, round * 100 + i, round * 20 + i);
        }
        run(&w, INT64_MAX);
    }
    assert_int_equal(w.ng, 1000);
    for (size_t k = 0; k < w.ng; k++) {
        assert_int_equal(w.g[k].rc, CAP_OK);
        assert_int_equal(w.g[k].n, (int32_t)k);
    }
    world_free(&w);
}

/* ---- determinism ---- */

static void scenario(world *w, uint64_t seed)
{
    sim_dist lat = {SIM_DIST_LOGNORMAL, 2 * MS, 0.8};
    world_init(w, seed, &lat);
    uint32_t gw = actor(w, "gateway"), sc = actor(w, "scheduler");
    uint32_t wk[4];
    for (int i = 0; i < 4; i++) {
        char n[32];
        snprintf(n, sizeof n, "worker-%d", i);
        wk[i] = actor(w, n);
        assert_int_equal(sim_bus_subscribe(w->bus, wk[i], "job.gpu", "gpu", 0, NULL), CAP_OK);
    }
    assert_int_equal(sim_bus_subscribe(w->bus, sc, "sys.>", NULL, 0, NULL), CAP_OK);
    sim_fault f = {0};
    f.start = 0;
    f.end = SIM_FOREVER;
    f.kind = SIM_FAULT_LOSS;
    f.p = 0.1;
    add_fault(w, &f);
    f.kind = SIM_FAULT_DUPLICATE;
    f.p = 0.1;
    add_fault(w, &f);
    f.kind = SIM_FAULT_REORDER;
    f.window = MS;
    add_fault(w, &f);
    for (int i = 0; i < 300; i++) {
        pub(w, sc, "job.gpu", i * MS / 2, i);
        pub(w, wk[i % 4], "sys.job.result", i * MS / 2 + 1, i);
        pub(w, gw, "sys.job.submit", i * MS / 2 + 2, i);
    }
    run(w, INT64_MAX);
}

static void test_same_seed_same_sequence(void **state)
{
    (void)state;
    world x, y, z;
    scenario(&x, 1234);
    scenario(&y, 1234);
    scenario(&z, 1235);
    assert_int_equal(x.ng, y.ng);
    for (size_t i = 0; i < x.ng; i++) {
        assert_true(x.g[i].time == y.g[i].time);
        assert_int_equal(x.g[i].to, y.g[i].to);
        assert_true(x.g[i].msg_id == y.g[i].msg_id);
        assert_int_equal(x.g[i].dup, y.g[i].dup);
    }
    assert_memory_equal(sim_bus_get_stats(x.bus), sim_bus_get_stats(y.bus), sizeof(sim_bus_stats));
    int differs = x.ng != z.ng;
    for (size_t i = 0; !differs && i < x.ng; i++)
        differs = x.g[i].time != z.g[i].time || x.g[i].to != z.g[i].to;
    assert_true(differs);
    /* Pinned for seed 1234. */
    const sim_bus_stats *st = sim_bus_get_stats(x.bus);
    char buf[160];
    snprintf(buf, sizeof buf, "pub %llu routed %llu dlv %llu dup %llu loss %llu last %lld",
             (unsigned long long)st->published, (unsigned long long)st->routed,
             (unsigned long long)st->delivered, (unsigned long long)st->duplicated,
             (unsigned long long)st->dropped[SIM_DROP_LOSS], (long long)x.g[x.ng - 1].time);
    assert_string_equal(buf, SCENARIO_GOLDEN);
    world_free(&x);
    world_free(&y);
    world_free(&z);
}

typedef struct {
    uint64_t published[4];
    int n_published;
    uint64_t dropped_id;
    char dropped_to[16];
    sim_drop_reason reason;
    int n_dropped;
} seen_ids;

static void observe_ids(void *ctx, int64_t now, const sim_publish_strings *s,
                        const uint8_t *bytes, size_t len)
{
    (void)now, (void)bytes, (void)len;
    seen_ids *o = ctx;
    if (o->n_published < 4)
        o->published[o->n_published] = s->msg_id;
    o->n_published++;
}

static void observe_drop(void *ctx, int64_t now, uint64_t msg_id, const char *from,
                         const char *to, const char *subject, sim_drop_reason reason)
{
    (void)now, (void)from, (void)subject;
    seen_ids *o = ctx;
    o->dropped_id = msg_id;
    snprintf(o->dropped_to, sizeof o->dropped_to, "%s", to ? to : "");
    o->reason = reason;
    o->n_dropped++;
}

/* The observers name each publish by its number, the msg_id its
 * deliveries carry: a dropped copy is told apart from the other publishes. */
static void test_observers_number_publishes(void **state)
{
    (void)state;
    sim_bus_config c;
    sim_bus_config_default(&c);
    seen_ids o = {0};
    c.on_publish = observe_ids;
    c.on_drop = observe_drop;
    c.ctx = &o;
    sim_queue q;
    uint32_t a;
    sim_bus *bus = observed_bus(&c, &q, "a", "job.x", &a);
    cap_packet *p = make_hb("a", 0, 1);
    assert_int_equal(sim_bus_publish(bus, a, "job.x", NULL, p, 0, &q), CAP_OK);
    assert_int_equal(sim_bus_partition(bus, "a", "b", 0, SIM_FOREVER, NULL), CAP_OK);
    /* the second publish meets the partition at once */
    assert_int_equal(sim_bus_publish(bus, a, "job.x", NULL, p, 0, &q), CAP_OK);
    assert_int_equal(o.n_published, 2);
    assert_true(o.published[0] != o.published[1]);
    assert_int_equal(o.n_dropped, 1);
    assert_int_equal(o.dropped_id, o.published[1]);
    assert_string_equal(o.dropped_to, "b");
    assert_int_equal(o.reason, SIM_DROP_PARTITION);
    /* the first was routed before it, and meets it at delivery: dropped
     * under its own publish's number */
    sim_event ev;
    assert_int_equal(sim_queue_pop(&q, &ev), 1);
    assert_int_equal(((const sim_delivery *)ev.data)->msg_id, o.published[0]);
    sim_msg m;
    cap_diag d;
    assert_int_equal(sim_bus_deliver(bus, &ev, ev.time, &m, &d), SIM_BUS_DROPPED);
    assert_int_equal(o.dropped_id, o.published[0]);
    assert_int_equal(o.reason, SIM_DROP_PARTITION);
    sim_delivery_free(ev.data);
    assert_int_equal(o.n_dropped, 2);
    cap_packet_free(p);
    sim_queue_free(&q, NULL, NULL);
    sim_bus_free(bus);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_subject_rules),
        cmocka_unit_test(test_subject_every_byte),
        cmocka_unit_test(test_literal_routing),
        cmocka_unit_test(test_broadcast),
        cmocka_unit_test(test_queue_group),
        cmocka_unit_test(test_request_reply),
        cmocka_unit_test(test_latency),
        cmocka_unit_test(test_latency_distributions),
        cmocka_unit_test(test_loss),
        cmocka_unit_test(test_duplicate),
        cmocka_unit_test(test_replay),
        cmocka_unit_test(test_reorder),
        cmocka_unit_test(test_partition),
        cmocka_unit_test(test_skew),
        cmocka_unit_test(test_corrupt_and_decode_failure),
        cmocka_unit_test(test_delivered_packets_are_lent),
        cmocka_unit_test(test_full_and_observer),
        cmocka_unit_test(test_publish_observer_strings),
        cmocka_unit_test(test_observers_number_publishes),
        cmocka_unit_test(test_same_seed_same_sequence),
        cmocka_unit_test(test_route_memo),
        cmocka_unit_test(test_actor_ids),
        cmocka_unit_test(test_group_of_one_draws),
        cmocka_unit_test(test_delivery_outlives_bus),
        cmocka_unit_test(test_delivery_blocks_reused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
