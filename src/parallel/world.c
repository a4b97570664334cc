/* world.c: the MPI world of one run: starting and finalising MPI (or not, for a single
 * process without a launcher), the per-axis communicators, fatal aborts, traffic
 * counters, uneven splits, and the scratch buffers the ring reductions borrow. */
#include "parallel/world.h"
#include <limits.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- launch ---------------------------------------------------------------------------- */

int ct_launch_mpi(void) { return getenv("OMPI_COMM_WORLD_SIZE") != NULL || getenv("PMIX_RANK") != NULL; }

static int env_int(const char *name, int fallback) {
    const char *s = getenv(name);
    char *end;
    long v = s ? strtol(s, &end, 10) : 0;
    return s && *s && !*end && v >= 0 && v <= INT_MAX ? (int)v : fallback;
}

int ct_launch_rank(void) { return env_int("OMPI_COMM_WORLD_RANK", env_int("PMIX_RANK", 0)); }

int ct_launch_size(void) {
    return ct_launch_mpi() ? env_int("OMPI_COMM_WORLD_SIZE", 0) : 1; /* 0: not announced */
}

void ct_launch_report(const char *prefix) {
    if (ct_launch_rank() == 0) {
        fprintf(stderr, "%s%s\n", prefix, ct_last_error());
        fflush(stderr);
        return;
    }
    /* the others give rank 0's message time to reach mpirun before the job is torn down */
    struct timespec delay = {1, 0};
    nanosleep(&delay, NULL);
}

/* ---- create ---------------------------------------------------------------------------- */

ct_status ct_world_mpi_error(const ct_world *w, int axis, int rc, const char *what) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) snprintf(msg, sizeof msg, "code %d", rc);
    return ct_fail(CT_EIO, "%s on the %s group (rank %d): %s", what, ct_axis_name(axis),
                   w ? w->rank : ct_launch_rank(), msg);
}

static ct_status start_mpi(ct_world *w) {
    int init = 0, fin = 0, provided = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    if (fin) return ct_fail(CT_EINVAL, "MPI was finalised already: one world per process");
    if (!init) {
        int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, &provided);
        if (rc != MPI_SUCCESS) return ct_fail(CT_EIO, "MPI_Init_thread failed (code %d)", rc);
        w->owns_mpi = 1;
    } else {
        MPI_Query_thread(&provided);
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    if (provided < MPI_THREAD_FUNNELED)
        return ct_fail(CT_EIO, "MPI provides thread level %d, cetus needs MPI_THREAD_FUNNELED", provided);
    w->threaded = provided >= MPI_THREAD_SERIALIZED;
    MPI_Comm_rank(MPI_COMM_WORLD, &w->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &w->size);
    return CT_OK;
}

static ct_status build_comms(ct_world *w) {
    for (int a = 0; a < CT_AXIS_COUNT; a++) {
        int rc, color = ct_layout_peer(&w->layout, w->rank, a, 0);
        if (a == CT_AXIS_WORLD) rc = MPI_Comm_dup(MPI_COMM_WORLD, &w->comm[a]);
        else
            rc = MPI_Comm_split(MPI_COMM_WORLD, color, w->coord[a], &w->comm[a]);
        if (rc != MPI_SUCCESS) return ct_world_mpi_error(w, a, rc, "MPI_Comm_split");
        MPI_Comm_set_errhandler(w->comm[a], MPI_ERRORS_RETURN);
        int size = 0, rank = -1;
        MPI_Comm_size(w->comm[a], &size);
        MPI_Comm_rank(w->comm[a], &rank);
        CT_ASSERT(size == w->axis_size[a] && rank == w->coord[a]);
        rc = MPI_Comm_dup(w->comm[a], &w->p2p[a]);
        if (rc != MPI_SUCCESS) return ct_world_mpi_error(w, a, rc, "MPI_Comm_dup");
        MPI_Comm_set_errhandler(w->p2p[a], MPI_ERRORS_RETURN);
        MPI_Comm node; /* the members of this group on this rank's node */
        rc = MPI_Comm_split_type(w->comm[a], MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node);
        if (rc != MPI_SUCCESS) return ct_world_mpi_error(w, a, rc, "MPI_Comm_split_type");
        int here = 0;
        MPI_Comm_size(node, &here);
        MPI_Comm_free(&node);
        w->one_node[a] = here == size;
    }
    int rc = MPI_Comm_dup(MPI_COMM_WORLD, &w->watch);
    if (rc != MPI_SUCCESS) return ct_world_mpi_error(w, CT_AXIS_WORLD, rc, "MPI_Comm_dup");
    MPI_Comm_set_errhandler(w->watch, MPI_ERRORS_RETURN);
    return CT_OK;
}

/* Ranks with a core each poll 50 us and yield until 200 us before sleeping; ranks that
 * share cores (more ranks on this node than online CPUs) poll 10 us and yield until 50 us,
 * so a peer that needs the core gets it. */
static ct_status set_waiting(ct_world *w) {
    int local = 1;
    MPI_Comm node;
    int rc = MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, w->rank, MPI_INFO_NULL, &node);
    if (rc != MPI_SUCCESS) return ct_world_mpi_error(w, CT_AXIS_WORLD, rc, "MPI_Comm_split_type");
    MPI_Comm_size(node, &local);
    MPI_Comm_free(&node);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (cpus > 0 && local > cpus) {
        w->poll_s = 10e-6;
        w->yield_s = 50e-6;
    }
    return CT_OK;
}

static void set_layout(ct_world *w, const ct_layout *l) {
    w->layout = *l;
    ct_layout_coords(l, w->rank, w->coord);
    for (int a = 0; a < CT_AXIS_COUNT; a++) w->axis_size[a] = ct_layout_axis_size(l, a);
}

static void release(ct_world *w) {
    for (int a = 0; a < CT_AXIS_COUNT; a++) {
        if (w->comm[a] != MPI_COMM_NULL) MPI_Comm_free(&w->comm[a]);
        if (w->p2p[a] != MPI_COMM_NULL) MPI_Comm_free(&w->p2p[a]);
    }
    if (w->watch != MPI_COMM_NULL) MPI_Comm_free(&w->watch);
    for (int i = 0; i < w->n_slots; i++) ct_free(w->slots[i].buf);
    ct_free(w->slots);
    if (w->owns_mpi) MPI_Finalize();
    pthread_mutex_destroy(&w->lock);
    ct_free(w);
}

ct_status ct_world_create(ct_world **out, const ct_layout *want) {
    *out = NULL;
    int launched = ct_launch_mpi(), announced = ct_launch_size();
    ct_layout l;
    if (announced > 0) CT_TRY(ct_layout_resolve(want, announced, launched, &l));
    ct_world *w = ct_calloc(sizeof *w, "parallel world");
    if (!w) return CT_ENOMEM;
    w->size = 1;
    pthread_mutex_init(&w->lock, NULL);
    w->segment = CT_COMM_SEGMENT;
    w->poll_s = 50e-6;
    w->yield_s = 200e-6;
    w->timeout_s = CT_COMM_TIMEOUT;
    w->watch = MPI_COMM_NULL;
    for (int a = 0; a < CT_AXIS_COUNT; a++) {
        w->comm[a] = w->p2p[a] = MPI_COMM_NULL;
        w->one_node[a] = 1;
    }
    ct_status s = launched ? start_mpi(w) : CT_OK;
    if (s == CT_OK) s = ct_layout_resolve(want, w->size, launched, &l);
    if (s == CT_OK) {
        set_layout(w, &l);
        if (launched) s = build_comms(w);
        if (launched && s == CT_OK) s = set_waiting(w);
    }
    if (s != CT_OK) {
        release(w);
        return s;
    }
    *out = w;
    return CT_OK;
}

void ct_world_free(ct_world *w) {
    if (w) release(w);
}

/* ---- accessors ------------------------------------------------------------------------- */

int ct_world_rank(const ct_world *w) { return w->rank; }
int ct_world_size(const ct_world *w) { return w->size; }
int ct_world_is_mpi(const ct_world *w) { return w->comm[CT_AXIS_WORLD] != MPI_COMM_NULL; }
int ct_world_threaded(const ct_world *w) { return w->threaded; }
int ct_world_axis_on_one_node(const ct_world *w, ct_axis axis) {
    CT_ASSERT(axis >= 0 && axis < CT_AXIS_COUNT);
    return w->one_node[axis];
}
const ct_layout *ct_world_layout(const ct_world *w) { return &w->layout; }

int ct_world_coord(const ct_world *w, ct_axis axis) {
    CT_ASSERT(axis >= 0 && axis < CT_AXIS_COUNT);
    return w->coord[axis];
}

int ct_world_axis_size(const ct_world *w, ct_axis axis) {
    CT_ASSERT(axis >= 0 && axis < CT_AXIS_COUNT);
    return w->axis_size[axis];
}

int ct_world_peer(const ct_world *w, ct_axis axis, int coord) {
    CT_ASSERT(axis >= 0 && axis < CT_AXIS_COUNT && coord >= 0 && coord < w->axis_size[axis]);
    return ct_layout_peer(&w->layout, w->rank, axis, coord);
}

MPI_Comm ct_world_comm(const ct_world *w, ct_axis axis) {
    CT_ASSERT(axis >= 0 && axis < CT_AXIS_COUNT);
    return w->comm[axis];
}

/* ---- abort ----------------------------------------------------------------------------- */

_Noreturn void ct_world_abort(ct_world *w, int code, const char *msg) {
    if (code == 0) code = 1;
    if (w && w->layout.pipeline > 1)
        fprintf(stderr, "cetus: rank %d of %d (data %d, tensor %d, pipeline %d): %s\n", w->rank, w->size,
                w->coord[CT_AXIS_DATA], w->coord[CT_AXIS_TENSOR], w->coord[CT_AXIS_PIPELINE], msg);
    else if (w)
        fprintf(stderr, "cetus: rank %d of %d (data %d, tensor %d): %s\n", w->rank, w->size,
                w->coord[CT_AXIS_DATA], w->coord[CT_AXIS_TENSOR], msg);
    else if (ct_launch_mpi())
        fprintf(stderr, "cetus: rank %d of %d: %s\n", ct_launch_rank(), ct_launch_size(), msg);
    else
        fprintf(stderr, "cetus: %s\n", msg);
    fflush(stderr);
    int init = 0, fin = 0;
    if (ct_launch_mpi()) {
        MPI_Initialized(&init);
        MPI_Finalized(&fin);
    }
    if (init && !fin) MPI_Abort(MPI_COMM_WORLD, code);
    exit(code);
}

/* ---- counters and settings ------------------------------------------------------------- */

ct_comm_counter ct_world_counter(const ct_world *w, ct_axis axis) {
    CT_ASSERT(axis >= 0 && axis < CT_AXIS_COUNT);
    return w->counter[axis];
}

void ct_world_reset_counters(ct_world *w) { memset(w->counter, 0, sizeof w->counter); }

ct_status ct_world_set_timeout(ct_world *w, double seconds) {
    if (!(seconds >= 0 && seconds <= 1e7))
        return ct_fail(CT_EINVAL, "parallel.timeout = %g: allowed 0 (no watchdog) to 1e7 seconds", seconds);
    w->timeout_s = seconds;
    return CT_OK;
}

double ct_world_timeout(const ct_world *w) { return w->timeout_s; }

void ct_world_set_segment(ct_world *w, size_t floats) {
    w->segment = floats == 0 || floats > INT_MAX / 8 ? CT_COMM_SEGMENT : floats;
}

/* ---- scratch --------------------------------------------------------------------------- */

/* A free slot of at least `floats` floats: reused, grown, or added. */
ct_status ct_world_claim_scratch(ct_world *w, size_t floats, int *slot, float **buf) {
    int pick = -1;
    for (int i = 0; i < w->n_slots; i++) {
        if (w->slots[i].busy) continue;
        if (pick < 0 || w->slots[i].cap > w->slots[pick].cap) pick = i;
        if (w->slots[i].cap >= floats) {
            pick = i;
            break;
        }
    }
    if (pick < 0) {
        ct_scratch *grown = ct_calloc(sizeof *grown * (size_t)(w->n_slots + 1), "comm scratch");
        if (!grown) return CT_ENOMEM;
        if (w->n_slots) memcpy(grown, w->slots, sizeof *grown * (size_t)w->n_slots);
        ct_free(w->slots);
        w->slots = grown;
        pick = w->n_slots++;
    }
    ct_scratch *s = &w->slots[pick];
    if (s->cap < floats) {
        float *b = ct_alloc_in(CT_TIER_COMPUTE, floats * sizeof(float), "comm scratch");
        if (!b) return CT_ENOMEM;
        ct_free(s->buf);
        s->buf = b;
        s->cap = floats;
    }
    s->busy = 1;
    *slot = pick;
    *buf = s->buf;
    return CT_OK;
}

void ct_world_release_scratch(ct_world *w, int slot) {
    if (slot >= 0 && slot < w->n_slots) w->slots[slot].busy = 0;
}

/* ---- splits ---------------------------------------------------------------------------- */

/* counts == NULL: near-even split of total. */
static ct_status split_make(ct_split **out, const ct_world *w, ct_axis axis, const size_t *counts,
                            size_t total) {
    CT_ASSERT(axis >= 0 && axis < CT_AXIS_COUNT);
    *out = NULL;
    int p = w->axis_size[axis];
    ct_split *s = ct_calloc(sizeof *s + 2 * (size_t)p * sizeof(size_t), "comm split");
    if (!s) return CT_ENOMEM;
    s->axis = axis;
    s->p = p;
    s->count = (size_t *)(s + 1);
    s->offset = s->count + p;
    for (int c = 0; c < p; c++) {
        size_t n = counts ? counts[c] : total / (size_t)p + ((size_t)c < total % (size_t)p);
        s->count[c] = n;
        s->offset[c] = s->total;
        s->total += n;
        if (n > s->max_count) s->max_count = n;
    }
    *out = s;
    return CT_OK;
}

ct_status ct_split_create(ct_split **out, const ct_world *w, ct_axis axis, const size_t *counts) {
    return split_make(out, w, axis, counts, 0);
}

ct_status ct_split_create_even(ct_split **out, const ct_world *w, ct_axis axis, size_t total) {
    return split_make(out, w, axis, NULL, total);
}

void ct_split_free(ct_split *s) { ct_free(s); }
ct_axis ct_split_axis(const ct_split *s) { return s->axis; }
size_t ct_split_total(const ct_split *s) { return s->total; }

size_t ct_split_count(const ct_split *s, int coord) {
    CT_ASSERT(coord >= 0 && coord < s->p);
    return s->count[coord];
}

size_t ct_split_offset(const ct_split *s, int coord) {
    CT_ASSERT(coord >= 0 && coord < s->p);
    return s->offset[coord];
}
