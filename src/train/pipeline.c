/* pipeline.c: the GPipe and 1F1B schedules on one pipeline stage: micro-batch slots (views
 * of the stage model), the boundary messages and their buffers, and the loss gathered from
 * the last stage. See pipeline.h. */
#include "core/core.h"
#include "model/model.h"
#include "model/sample.h"
#include "train/pipeline.h"
#include <string.h>

enum { MAX_MICRO = 16383 }; /* two tags per micro-batch, below the 32767 tag limit */

typedef struct slot {
    ct_model *m;                /* the stage model (slot 0) or a view of it */
    ct_request out_req, dx_req; /* sends of its output and of its input gradient */
    int out_busy, dx_busy;
} slot;

/* Receives of one direction, taken in the schedule's order, double buffered: while
 * micro-batch order[i] computes, order[i + 1]'s message is already posted. */
typedef struct inbox {
    int peer, dir;    /* dir 0: activations from the previous stage, 1: gradients from the next */
    const int *order; /* micro-batches in the order they are taken [M] */
    int next;         /* index into order of the next one to take */
    float *buf[2];
    ct_request req[2];
    int posted[2];  /* a receive is in flight (or arrived, not yet taken) */
    int arrived[2]; /* it completed during a poll */
} inbox;

struct ct_pipe {
    ct_world *w;
    ct_model *m;
    ct_schedule schedule;
    int micro, rows, mrows, T, stage, stages, n_slots;
    size_t boundary; /* floats per message: mrows * T * C */
    slot *slots;
    int *fwd_order, *bwd_order;
    inbox in, grad;
    double wait_s;
    ct_status polled;       /* the first failure seen by a poll */
    ct_progress_fn chained; /* the model's progress hook before ours (data parallelism) */
    void *chained_ctx;
};

ct_status ct_schedule_parse(const char *text, ct_schedule *out) {
    if (!strcmp(text, "1f1b")) {
        *out = CT_SCHEDULE_1F1B;
        return CT_OK;
    }
    if (!strcmp(text, "gpipe")) {
        *out = CT_SCHEDULE_GPIPE;
        return CT_OK;
    }
    return ct_fail(CT_EINVAL, "parallel.schedule = \"%s\": allowed \"1f1b\" or \"gpipe\"", text);
}

const char *ct_schedule_name(ct_schedule s) { return s == CT_SCHEDULE_GPIPE ? "gpipe" : "1f1b"; }

int ct_pipe_slots(const ct_pipe *p) { return p->n_slots; }
int ct_pipe_micro_batches(const ct_pipe *p) { return p->micro; }

size_t ct_pipe_acts_bytes(const ct_pipe *p) {
    size_t n = 0;
    for (int i = 0; i < p->n_slots; i++) n += ct_model_acts_bytes(p->slots[i].m);
    return n;
}
double ct_pipe_wait_s(const ct_pipe *p) { return p->wait_s; }

static int first_stage(const ct_pipe *p) { return p->stage == 0; }
static int last_stage(const ct_pipe *p) { return p->stage == p->stages - 1; }

static ct_status wait_timed(ct_pipe *p, ct_request *r) {
    double t0 = ct_now();
    ct_status s = ct_comm_wait(p->w, r);
    p->wait_s += ct_now() - t0;
    return s;
}

static ct_status post(ct_pipe *p, inbox *b, int i) {
    int k = b->order[i], at = i & 1;
    b->posted[at] = 1;
    b->arrived[at] = 0;
    return ct_comm_recv_start(p->w, CT_AXIS_PIPELINE, b->peer, 2 * k + b->dir, b->buf[at], p->boundary,
                              &b->req[at]);
}

static ct_status inbox_start(ct_pipe *p, inbox *b) {
    b->next = 0;
    return post(p, b, 0);
}

/* Waits for micro-batch k (the next in b's order), posts the one after it and returns the
 * buffer; it stays valid until the next take (forward and backward copy it in). */
static ct_status take(ct_pipe *p, inbox *b, int k, const float **x) {
    int i = b->next++, at = i & 1;
    CT_ASSERT(b->order[i] == k && b->posted[at]);
    if (!b->arrived[at]) CT_TRY(wait_timed(p, &b->req[at]));
    b->posted[at] = 0;
    if (i + 1 < p->micro) CT_TRY(post(p, b, i + 1));
    *x = b->buf[at];
    return CT_OK;
}

static ct_status settle(ct_pipe *p, slot *s) {
    if (s->out_busy) {
        s->out_busy = 0;
        CT_TRY(wait_timed(p, &s->out_req));
    }
    if (s->dx_busy) {
        s->dx_busy = 0;
        CT_TRY(wait_timed(p, &s->dx_req));
    }
    return CT_OK;
}

/* Between the products of forward and backward (the model's progress hook): tests every
 * message in flight, so that sends and receives move while this stage computes (a large
 * message moves only while both ends call into MPI), then runs the hook it displaced. */
static void test_one(ct_pipe *p, ct_request *r, int *busy, int *done_flag) {
    int done = 0;
    if (p->polled != CT_OK) return;
    p->polled = ct_comm_test(p->w, r, &done);
    if (p->polled == CT_OK && done) {
        if (busy) *busy = 0;
        if (done_flag) *done_flag = 1;
    }
}

static void on_progress(void *ctx) {
    ct_pipe *p = ctx;
    for (int i = 0; i < p->n_slots; i++) {
        slot *s = &p->slots[i];
        if (s->out_busy) test_one(p, &s->out_req, &s->out_busy, NULL);
        if (s->dx_busy) test_one(p, &s->dx_req, &s->dx_busy, NULL);
    }
    inbox *boxes[2] = {&p->in, &p->grad};
    for (int b = 0; b < 2; b++)
        for (int at = 0; at < 2; at++)
            if (boxes[b]->posted[at] && !boxes[b]->arrived[at])
                test_one(p, &boxes[b]->req[at], NULL, &boxes[b]->arrived[at]);
    if (p->chained) p->chained(p->chained_ctx);
}

void ct_pipe_free(ct_pipe *p) {
    if (!p) return;
    ct_model_set_progress_hook(p->m, p->chained, p->chained_ctx);
    for (int i = 0; i < p->n_slots && p->slots; i++) {
        settle(p, &p->slots[i]);
        if (i > 0) ct_model_free(p->slots[i].m);
    }
    ct_free(p->slots);
    ct_free(p->fwd_order);
    ct_free(p->in.buf[0]);
    ct_free(p);
}

static ct_status alloc_buffers(ct_pipe *p) {
    int M = p->micro;
    if (!(p->slots = ct_calloc((size_t)p->n_slots * sizeof *p->slots, "the pipeline slots")) ||
        !(p->fwd_order = ct_alloc(2 * (size_t)M * sizeof(int), "the pipeline schedule")) ||
        !(p->in.buf[0] = ct_alloc_in(CT_TIER_COMPUTE, 4 * p->boundary * sizeof(float),
                                     "pipeline receive buffers")))
        return CT_ENOMEM;
    p->in.buf[1] = p->in.buf[0] + p->boundary;
    p->grad.buf[0] = p->in.buf[1] + p->boundary;
    p->grad.buf[1] = p->grad.buf[0] + p->boundary;
    p->bwd_order = p->fwd_order + M;
    for (int k = 0; k < M; k++) {
        p->fwd_order[k] = k;
        p->bwd_order[k] = p->schedule == CT_SCHEDULE_GPIPE ? M - 1 - k : k;
    }
    p->in.peer = p->stage - 1;
    p->in.dir = 0;
    p->in.order = p->fwd_order;
    p->grad.peer = p->stage + 1;
    p->grad.dir = 1;
    p->grad.order = p->bwd_order;
    p->slots[0].m = p->m;
    for (int i = 1; i < p->n_slots; i++) CT_TRY(ct_model_create_view(&p->slots[i].m, p->m));
    return CT_OK;
}

ct_status ct_pipe_create(ct_pipe **out, ct_world *w, ct_model *m, ct_schedule schedule, int micro, int rows,
                         int T) {
    if (micro < 1 || micro > MAX_MICRO || rows % micro != 0)
        return ct_fail(CT_EINVAL,
                       "parallel.micro_batches = %d does not divide the %d rows each data rank "
                       "takes of a batch (at most %d)",
                       micro, rows, MAX_MICRO);
    ct_pipe *p = ct_calloc(sizeof *p, "the pipeline");
    if (!p) return CT_ENOMEM;
    *p = (ct_pipe){.w = w,
                   .m = m,
                   .schedule = schedule,
                   .micro = micro,
                   .rows = rows,
                   .mrows = rows / micro,
                   .T = T,
                   .stage = ct_model_stage(m),
                   .stages = ct_model_stages(m)};
    p->boundary = (size_t)p->mrows * (size_t)T * (size_t)ct_model_get_config(m)->d_model;
    int depth = p->stages - p->stage; /* 1F1B: micro-batches in flight here */
    p->n_slots = schedule == CT_SCHEDULE_GPIPE || depth > micro ? micro : depth;
    ct_model_get_progress_hook(m, &p->chained, &p->chained_ctx);
    ct_model_set_progress_hook(m, on_progress, p);
    ct_status s = alloc_buffers(p);
    if (s == CT_OK) s = ct_model_ensure_grads(m);
    if (s != CT_OK) {
        ct_pipe_free(p);
        return s;
    }
    *out = p;
    return CT_OK;
}

/* What a schedule's steps share: the batch and the running sums. */
typedef struct run {
    const int32_t *inputs, *targets;
    float scale;
    uint64_t noise_seed;
    int row0, training;
    double loss, aux;
    ct_dp *dp;
    int reduce, backwards_left;
} run;

static ct_status forward(ct_pipe *p, run *r, int k) {
    slot *s = &p->slots[k % p->n_slots];
    CT_TRY(settle(p, s)); /* its last micro-batch's sends read the activations */
    const float *x = NULL;
    if (!first_stage(p)) CT_TRY(take(p, &p->in, k, &x));
    size_t at = (size_t)k * (size_t)p->mrows * (size_t)p->T;
    ct_model_set_training(s->m, r->training, r->noise_seed ^ ((uint64_t)(r->row0 + k * p->mrows) << 40));
    float loss = 0.0f;
    CT_TRY(ct_model_forward_stage(s->m, r->inputs + at, last_stage(p) ? r->targets + at : NULL, NULL, x,
                                  p->mrows, p->T, &loss));
    r->loss += loss;
    r->aux += ct_model_aux_loss(s->m);
    if (last_stage(p)) return CT_OK;
    s->out_busy = 1;
    return ct_comm_send_start(p->w, CT_AXIS_PIPELINE, p->stage + 1, 2 * k, ct_model_stage_output(s->m),
                              p->boundary, &s->out_req);
}

static ct_status backward(ct_pipe *p, run *r, int k) {
    slot *s = &p->slots[k % p->n_slots];
    const float *dy = NULL;
    if (!last_stage(p)) CT_TRY(take(p, &p->grad, k, &dy));
    ct_dp_arm(r->dp, r->reduce && --r->backwards_left == 0);
    CT_TRY(ct_model_backward_stage(s->m, r->scale, dy));
    if (first_stage(p)) return CT_OK;
    s->dx_busy = 1;
    return ct_comm_send_start(p->w, CT_AXIS_PIPELINE, p->stage - 1, 2 * k + 1, ct_model_stage_input_grad(s->m),
                              p->boundary, &s->dx_req);
}

static ct_status run_schedule(ct_pipe *p, run *r) {
    int M = p->micro;
    p->polled = CT_OK;
    if (!first_stage(p)) CT_TRY(inbox_start(p, &p->in));
    if (!last_stage(p)) CT_TRY(inbox_start(p, &p->grad));
    if (p->schedule == CT_SCHEDULE_GPIPE) {
        for (int k = 0; k < M; k++) CT_TRY(forward(p, r, k));
        for (int k = M - 1; k >= 0; k--) CT_TRY(backward(p, r, k));
    } else {
        int warmup = p->stages - p->stage - 1 < M ? p->stages - p->stage - 1 : M;
        for (int k = 0; k < warmup; k++) CT_TRY(forward(p, r, k));
        for (int k = warmup; k < M; k++) {
            CT_TRY(forward(p, r, k));
            CT_TRY(backward(p, r, k - warmup));
        }
        for (int k = M - warmup; k < M; k++) CT_TRY(backward(p, r, k));
    }
    for (int i = 0; i < p->n_slots; i++) CT_TRY(settle(p, &p->slots[i]));
    return p->polled;
}

/* The last stage's loss and every stage's auxiliary loss, summed over the stages. */
static ct_status gather_losses(ct_pipe *p, const run *r, float *loss, float *aux) {
    float v[2] = {last_stage(p) ? (float)(r->loss / p->micro) : 0.0f, (float)(r->aux / p->micro)};
    CT_TRY(ct_comm_allreduce(p->w, CT_AXIS_PIPELINE, v, 2));
    *loss = v[0];
    if (aux) *aux = v[1];
    return CT_OK;
}

ct_status ct_pipe_train(ct_pipe *p, const int32_t *inputs, const int32_t *targets, float grad_scale,
                        uint64_t noise_seed, int row0, ct_dp *dp, int reduce, float *loss, float *aux) {
    run r = {inputs, targets, grad_scale / (float)p->micro, noise_seed, row0, 1, 0.0, 0.0, dp,
             reduce, p->micro};
    p->wait_s = 0.0;
    ct_status s = run_schedule(p, &r);
    for (int i = 0; i < p->n_slots; i++) ct_model_set_training(p->slots[i].m, 0, 0);
    CT_TRY(s);
    return gather_losses(p, &r, loss, aux);
}

/* Eval: micro-batch after micro-batch through slot 0, each message waited at once. */
ct_status ct_pipe_eval(ct_pipe *p, const int32_t *inputs, const int32_t *targets, float *loss) {
    run r = {inputs, targets, 0.0f, 0, 0, 0, 0.0, 0.0, NULL, 0, 0};
    ct_model *m = p->slots[0].m;
    CT_TRY(settle(p, &p->slots[0]));
    for (int k = 0; k < p->micro; k++) {
        size_t at = (size_t)k * (size_t)p->mrows * (size_t)p->T;
        ct_request q;
        if (!first_stage(p)) {
            CT_TRY(
                ct_comm_recv_start(p->w, CT_AXIS_PIPELINE, p->stage - 1, 2 * k, p->in.buf[0], p->boundary, &q));
            CT_TRY(ct_comm_wait(p->w, &q));
        }
        float l = 0.0f;
        CT_TRY(ct_model_forward_stage(m, inputs + at, last_stage(p) ? targets + at : NULL, NULL,
                                      first_stage(p) ? NULL : p->in.buf[0], p->mrows, p->T, &l));
        r.loss += l;
        if (last_stage(p)) continue;
        CT_TRY(ct_comm_send_start(p->w, CT_AXIS_PIPELINE, p->stage + 1, 2 * k, ct_model_stage_output(m),
                                  p->boundary, &q));
        CT_TRY(ct_comm_wait(p->w, &q));
    }
    return gather_losses(p, &r, loss, NULL);
}

/* One token's forward through the stages: the last stage samples it, and every stage
 * learns it. x holds [T, C] boundary activations. */
static ct_status next_token(ct_pipe *p, const int32_t *window, int T, float *x, float *logits,
                            float temperature, int top_k, ct_rng *rng, int32_t *out) {
    const ct_model_config *c = ct_model_get_config(p->m);
    size_t n = (size_t)T * (size_t)c->d_model;
    ct_model *m = p->slots[0].m;
    ct_request q;
    if (!first_stage(p)) {
        CT_TRY(ct_comm_recv_start(p->w, CT_AXIS_PIPELINE, p->stage - 1, 0, x, n, &q));
        CT_TRY(ct_comm_wait(p->w, &q));
    }
    CT_TRY(ct_model_forward_stage(m, window, NULL, NULL, first_stage(p) ? NULL : x, 1, T, NULL));
    float token = 0.0f; /* ids below 2^24 are exact as floats */
    if (last_stage(p)) {
        CT_TRY(ct_model_logits_row(m, T - 1, logits));
        int32_t id;
        CT_TRY(ct_sample_token(logits, c->vocab_size, temperature, top_k, rng, &id));
        token = (float)id;
    } else {
        CT_TRY(ct_comm_send_start(p->w, CT_AXIS_PIPELINE, p->stage + 1, 0, ct_model_stage_output(m), n, &q));
        CT_TRY(ct_comm_wait(p->w, &q));
    }
    CT_TRY(ct_comm_broadcast(p->w, CT_AXIS_PIPELINE, p->stages - 1, &token, 1));
    *out = (int32_t)token;
    return CT_OK;
}

ct_status ct_pipe_generate(ct_pipe *p, const int32_t *prompt, int n_prompt, int n_new, float temperature,
                           int top_k, ct_rng *rng, ct_token_fn on_token, void *ctx) {
    const ct_model_config *c = ct_model_get_config(p->m);
    if (n_prompt < 1) return ct_fail(CT_EINVAL, "generate: the prompt needs at least one token");
    CT_TRY(settle(p, &p->slots[0]));
    int cap = n_prompt + n_new;
    int32_t *seq = ct_alloc(sizeof(int32_t) * (size_t)cap, "generated tokens");
    float *x = seq ? ct_alloc_in(CT_TIER_COMPUTE,
                                 ((size_t)c->seq_len * (size_t)c->d_model + (size_t)c->vocab_size) *
                                     sizeof(float),
                                 "generation")
                   : NULL;
    if (!x) {
        ct_free(seq);
        return CT_ENOMEM;
    }
    memcpy(seq, prompt, sizeof(int32_t) * (size_t)n_prompt);
    ct_status s = CT_OK;
    for (int len = n_prompt; len < cap && s == CT_OK; len++) {
        int T = len < c->seq_len ? len : c->seq_len;
        s = next_token(p, seq + len - T, T, x, x + (size_t)c->seq_len * c->d_model, temperature, top_k, rng,
                       &seq[len]);
        if (s == CT_OK && on_token) on_token(seq[len], ctx);
    }
    ct_free(seq);
    ct_free(x);
    return s;
}
