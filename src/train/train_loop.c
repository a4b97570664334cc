/* train_loop.c: ct_trainer_run: the loop a user watches. A live progress line (step, loss,
 * lr, tokens/s, MFU, ETA; rewritten in place on a terminal, one line per log_interval
 * otherwise), JSONL metrics appended to run.dir/metrics.jsonl and the same scalars to a
 * TensorBoard event file (tb_events.h), validation at an interval, printed samples,
 * checkpoints at an interval and at the end. */
#include "core/core.h"
#include "model/model.h"
#include "data/tokenizer.h"
#include "model/sample.h"
#include "offload/policy.h"
#include "ops/backend.h"
#include "train/commands.h"
#include "train/multimodal.h"
#include "train/preempt.h"
#include "train/tb_events.h"
#include "train/trainer_internal.h"
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

typedef struct run_output {
    int leader; /* only rank 0 prints, writes metrics and samples */
    FILE *metrics;
    ct_tb_events *tb; /* NULL: no TensorBoard events */
    int tty;
    double peak_flops;
    ct_tokenizer *tok;   /* NULL: samples print token ids */
    float step_peaks[2]; /* this rank's compute-tier and resident peaks (MiB) over its steps */
} run_output;

static void metrics_line(run_output *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void metrics_line(run_output *o, const char *fmt, ...) {
    if (!o->metrics) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(o->metrics, fmt, ap);
    va_end(ap);
    fputc('\n', o->metrics);
    fflush(o->metrics);
}

static void print_token(int32_t id, void *ctx) {
    run_output *o = ctx;
    if (!o->leader) return;
    if (o->tok) {
        char *text;
        size_t len;
        if (ct_tokenizer_decode(o->tok, &id, 1, &text, &len) == CT_OK) {
            fwrite(text, 1, len, stdout);
            ct_free(text);
        }
    } else {
        printf(" %d", id);
    }
    fflush(stdout);
}

/* The leader's tensor group samples (all its ranks run the model; the leader prints), with
 * pipeline stages the stages of the leader's data coordinate; with expert parallelism every
 * rank does, as each expert group must run every forward whole, and so does every rank at
 * ZeRO 3, where each forward gathers every unit from all the data ranks. */
static ct_status print_sample(ct_trainer *tr, run_output *o) {
    if (tr->cfg.train.sample_tokens <= 0) return CT_OK;
    int everyone = ct_model_expert_ranks(tr->model) > 1 || tr->cfg.parallel.zero == 3;
    if (!everyone && ct_world_coord(tr->world, CT_AXIS_DATA) != 0) return CT_OK;
    uint64_t seed = (uint64_t)tr->cfg.train.seed * 1000003u + (uint64_t)tr->step;
    ct_rng rng;
    ct_rng_seed(&rng, seed);
    /* <|endoftext|> starts a document: a trained tokenizer's last id, or GPT-2's */
    int32_t prompt = tr->tokenizer.file[0]                     ? ct_loader_vocab_size(tr->train) - 1
                     : tr->cfg.model.vocab_size > CT_TOKEN_EOT ? CT_TOKEN_EOT
                                                               : 0;
    if (o->leader) printf("%s--- sample at step %" PRId64 " ---\n", o->tty ? "\n" : "", tr->step);
    ct_status s = tr->pipe ? ct_pipe_generate(tr->pipe, &prompt, 1, tr->cfg.train.sample_tokens, 0.8f, 40, &rng,
                                              print_token, o)
                           : ct_generate(tr->model, &prompt, 1, tr->cfg.train.sample_tokens, 0.8f, 40, seed,
                                         print_token, o);
    if (o->leader) printf("\n---\n");
    fflush(stdout);
    return s;
}

static void print_stages(const ct_trainer *tr) {
    int blocks[CT_MAX_STAGES], P = ct_model_stages(tr->model);
    if (ct_config_stage_blocks(&tr->cfg, blocks) != CT_OK) return;
    int micro = ct_pipe_micro_batches(tr->pipe);
    printf(
        "pipeline: %s schedule, %d micro-batch%s of %d row%s, up to %d in flight on stage 0; blocks per stage:",
        tr->cfg.parallel.schedule, micro, micro == 1 ? "" : "es", tr->rows / micro,
        tr->rows == micro ? "" : "s", ct_pipe_slots(tr->pipe));
    for (int s = 0; s < P; s++) printf(" %d", blocks[s]);
    printf("%s\n", strcmp(tr->cfg.parallel.stages, "auto") ? "" : " (balanced by compute)");
}

/* Where the optimizer state went, and the compute budget. */
static void print_offload(const ct_trainer *tr) {
    char a[32], b[32], c[32];
    size_t host = ct_adamw_bytes(tr->opt, CT_PLACE_HOST), disk = ct_adamw_bytes(tr->opt, CT_PLACE_DISK);
    if (host || disk)
        printf("offload: AdamW moments %s on the compute tier, %s in host memory, %s on disk%s%s\n",
               ct_format_bytes(ct_adamw_bytes(tr->opt, CT_PLACE_COMPUTE), a, sizeof a),
               ct_format_bytes(host, b, sizeof b), ct_format_bytes(disk, c, sizeof c), tr->store ? " in " : "",
               tr->store ? ct_store_path(tr->store) : "");
    int L = tr->cfg.model.n_layer;
    char plan[2048];
    ct_offload_describe(L, tr->plan, tr->plan + L + 2, tr->plan + 2 * (L + 2), plan, sizeof plan);
    if (!strcmp(tr->cfg.offload.policy, "auto"))
        printf("offload (auto): %s; predicted compute peak %s\n", plan,
               ct_format_bytes(tr->predicted_peak, a, sizeof a));
    else if (strcmp(plan, "nothing offloaded"))
        printf("offload plan: %s\n", plan);
    size_t w_host = ct_model_offloaded_bytes(tr->model, CT_PLACE_HOST),
           w_disk = ct_model_offloaded_bytes(tr->model, CT_PLACE_DISK);
    if (w_host || w_disk)
        printf("offload: block weights and gradients %s in host memory, %s on disk\n",
               ct_format_bytes(w_host, a, sizeof a), ct_format_bytes(w_disk, b, sizeof b));
    if (ct_tier_budget())
        printf("compute budget: %s, %s in use before the first step\n",
               ct_format_bytes(ct_tier_budget(), a, sizeof a),
               ct_format_bytes(ct_tier_in_use(CT_TIER_COMPUTE), b, sizeof b));
}

/* The caption metrics on the validation scenes. */
static ct_status evaluate_captions(ct_trainer *tr, run_output *o) {
    ct_caption_eval e;
    double t0 = ct_now();
    CT_TRY(ct_mm_evaluate(tr, &e));
    if (!o->leader) return CT_OK;
    printf("step %" PRId64
           ": val caption loss %.4f, token accuracy %.3f, exact match %.3f of %d scenes in %.1fs\n",
           tr->step, (double)e.loss, (double)e.token_acc, (double)e.exact_match, e.scenes, ct_now() - t0);
    fflush(stdout);
    metrics_line(o,
                 "{\"step\": %" PRId64 ", \"val_caption_loss\": %.9g, \"val_token_acc\": %.6f, "
                 "\"val_exact_match\": %.6f, \"val_caption_scenes\": %d}",
                 tr->step, (double)e.loss, (double)e.token_acc, (double)e.exact_match, e.scenes);
    CT_TRY(ct_tb_scalar(o->tb, tr->step, "val/caption_loss", e.loss));
    CT_TRY(ct_tb_scalar(o->tb, tr->step, "val/token_acc", e.token_acc));
    return ct_tb_scalar(o->tb, tr->step, "val/exact_match", e.exact_match);
}

/* Validation over `batches` micro-batches spread over the split (<= 0: the whole split,
 * metrics key "val_loss_full"); every figure says how many tokens it covers. Sets *whole
 * when the evaluation covered the whole split. */
static ct_status evaluate(ct_trainer *tr, run_output *o, int batches, int *whole) {
    ct_eval_result e;
    double t0 = ct_now();
    CT_TRY(ct_trainer_evaluate(tr, batches, &e));
    if (whole) *whole = e.whole;
    if (!o->leader) return tr->cap_val ? evaluate_captions(tr, o) : CT_OK; /* collective */
    char cover[48] = "the whole split", bpb_text[48] = "", bpb_json[48] = "";
    if (!e.whole)
        snprintf(cover, sizeof cover, "%.1f%% of the split", 100.0 * (double)e.tokens / (double)e.split_tokens);
    uint64_t bytes = 0, targets = 0; /* bits per byte: comparable across tokenizers */
    if (o->tok &&
        ct_eval_target_bytes(tr->cfg.data.dir, tr->cfg.train.batch_size, ct_config_train_seq_len(&tr->cfg),
                             e.whole ? 0 : e.batches, o->tok, &bytes, &targets) == CT_OK &&
        bytes > 0) {
        double bpb = (double)e.loss * (double)targets / ((double)bytes * log(2.0));
        snprintf(bpb_text, sizeof bpb_text, ", %.4f bits per byte", bpb);
        snprintf(bpb_json, sizeof bpb_json, ", \"val_bpb\": %.6f", bpb);
        CT_TRY(ct_tb_scalar(o->tb, tr->step, batches <= 0 ? "val/bpb_full" : "val/bpb", bpb));
    }
    printf("%sstep %" PRId64 ": val loss %.4f (perplexity %.1f%s) over %" PRIu64 " tokens (%s) in %.1fs\n",
           o->tty ? "\n" : "", tr->step, (double)e.loss, exp((double)e.loss), bpb_text, e.tokens, cover,
           ct_now() - t0);
    fflush(stdout);
    metrics_line(o,
                 "{\"step\": %" PRId64 ", \"%s\": %.9g, \"val_tokens\": %" PRIu64
                 ", \"val_split_tokens\": %" PRIu64 "%s}",
                 tr->step, batches <= 0 ? "val_loss_full" : "val_loss", (double)e.loss, e.tokens,
                 e.split_tokens, bpb_json);
    CT_TRY(ct_tb_scalar(o->tb, tr->step, batches <= 0 ? "val/loss_full" : "val/loss", e.loss));
    return tr->cap_val ? evaluate_captions(tr, o) : CT_OK;
}

/* Peak resident memory of this process so far. */
static double peak_rss_mb(void) {
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? (double)ru.ru_maxrss / 1024.0 : 0.0;
}

/* Appends the per-layer MoE statistics of the last micro-batch as a JSON array to buf;
 * returns the mean dropped fraction over MoE layers (0 without MoE). */
static double moe_json(ct_trainer *tr, char *buf, size_t cap) {
    size_t used = 0;
    int layers = 0;
    double dropped = 0.0;
    buf[0] = 0;
    for (int l = 0; l < tr->cfg.model.n_layer; l++) {
        ct_moe_stats ms;
        if (ct_model_moe_stats(tr->model, l, &ms) != CT_OK) continue;
        used += (size_t)snprintf(buf + used, cap - used,
                                 "%s{\"layer\": %d, \"aux\": %.5f, \"z\": %.4f, "
                                 "\"dropped\": %.4f, \"load\": [",
                                 layers ? ", " : "", l, (double)ms.aux, (double)ms.z, (double)ms.dropped);
        for (int e = 0; e < tr->cfg.model.moe.n_experts && used < cap; e++)
            used += (size_t)snprintf(buf + used, cap - used, "%s%.4f", e ? ", " : "", (double)ms.load[e]);
        if (used < cap) used += (size_t)snprintf(buf + used, cap - used, "]}");
        if (used >= cap) {
            buf[0] = 0;
            break;
        }
        dropped += ms.dropped;
        layers++;
    }
    return layers ? dropped / layers : 0.0;
}

/* The parallel layout's figures for metrics.jsonl: at ZeRO 3 " \"gathered_mb\": M,
 * \"gathers\": N, \"gather_s\": S, \"gather_wait_s\": W," (cumulative), with pipeline stages
 * " \"pipe_s\": S, \"pipe_busy_s\": [each stage's],"; "" without either. */
static const char *parallel_json(const ct_trainer *tr, const ct_step_stats *st, char *buf, size_t cap) {
    buf[0] = 0;
    size_t used = 0;
    if (tr->cfg.parallel.zero == 3) { /* cumulative, like the offload times */
        double bytes, busy_s, wait_s;
        long gathers;
        ct_dp_gather_stats(tr->dp, &bytes, &busy_s, &wait_s, &gathers);
        used = (size_t)snprintf(
            buf, cap, " \"gathered_mb\": %.1f, \"gathers\": %ld, \"gather_s\": %.4f, \"gather_wait_s\": %.4f,",
            bytes / (1 << 20), gathers, busy_s, wait_s);
    }
    if (!st->pipe_busy) return buf;
    used += (size_t)snprintf(buf + used, cap - used, " \"pipe_s\": %.4f, \"pipe_busy_s\": [", st->pipe_s);
    for (int s = 0; s < st->stages && used + 32 < cap; s++)
        used += (size_t)snprintf(buf + used, cap - used, "%s%.4f", s ? ", " : "", (double)st->pipe_busy[s]);
    snprintf(buf + used, cap - used, "],");
    return buf;
}

/* Every MoE layer's statistics of the step for TensorBoard: moe/layerL/{aux,z,dropped,load/E}. */
static ct_status tb_moe(ct_trainer *tr, run_output *o) {
    for (int l = 0; l < tr->cfg.model.n_layer && o->tb; l++) {
        ct_moe_stats ms;
        if (ct_model_moe_stats(tr->model, l, &ms) != CT_OK) continue;
        const char *name[3] = {"aux", "z", "dropped"};
        float v[3] = {ms.aux, ms.z, ms.dropped};
        char tag[64];
        for (int k = 0; k < 3; k++) {
            snprintf(tag, sizeof tag, "moe/layer%d/%s", l, name[k]);
            CT_TRY(ct_tb_scalar(o->tb, tr->step, tag, v[k]));
        }
        for (int e = 0; e < tr->cfg.model.moe.n_experts; e++) {
            snprintf(tag, sizeof tag, "moe/layer%d/load/%d", l, e);
            CT_TRY(ct_tb_scalar(o->tb, tr->step, tag, ms.load[e]));
        }
    }
    return CT_OK;
}

/* The step's scalars for TensorBoard, the figures of its metrics line: mem holds acts_mb,
 * compute_peak_mb, host_mb and peak_rss_mb. */
static ct_status tb_step(ct_trainer *tr, run_output *o, const ct_step_stats *st, double tok_s, double mfu,
                         const double mem[4]) {
    int moe = tr->cfg.model.moe_every > 0, cap = tr->cap_train != NULL;
    const struct {
        const char *tag;
        double value;
        int on;
    } v[] = {{"train/loss", st->loss, 1},
             {"train/caption_loss", st->caption_loss, cap && isfinite(st->caption_loss)},
             {"train/text_loss", st->text_loss, cap && isfinite(st->text_loss)},
             {"train/lr", st->lr, 1},
             {"train/grad_norm", st->grad_norm, 1},
             {"perf/tokens_per_s", tok_s, 1},
             {"perf/mfu", mfu, 1},
             {"perf/step_s", st->seconds, 1},
             {"memory/acts_mb", mem[0], 1},
             {"memory/compute_peak_mb", mem[1], 1},
             {"memory/host_mb", mem[2], 1},
             {"memory/peak_rss_mb", mem[3], 1},
             {"moe/aux_loss", st->aux, moe}};
    for (size_t i = 0; i < sizeof v / sizeof v[0] && o->tb; i++)
        if (v[i].on) CT_TRY(ct_tb_scalar(o->tb, tr->step, v[i].tag, v[i].value));
    return moe ? tb_moe(tr, o) : CT_OK;
}

static ct_status progress(ct_trainer *tr, run_output *o, const ct_step_stats *st, double tok_s, double eta) {
    if (!o->leader) return CT_OK;
    double mfu = tok_s * ct_model_flops_per_token(tr->model, ct_config_train_seq_len(&tr->cfg)) / o->peak_flops;
    char moe[8192], moe_text[64] = "", pipe[4096], kinds[128] = "", kinds_text[64] = "";
    double io_busy, io_wait; /* cumulative: the bench takes differences */
    ct_trainer_offload_times(tr, &io_busy, &io_wait);
    double dropped = moe_json(tr, moe, sizeof moe);
    if (tr->cfg.model.moe_every > 0)
        snprintf(moe_text, sizeof moe_text, " | aux %.4f drop %.1f%%", (double)st->aux, 100.0 * dropped);
    if (tr->cap_train) { /* each kind's loss (JSON null: no such micro-batch this step) */
        char c[32] = "null", t[32] = "null";
        ct_json_number(c, sizeof c, st->caption_loss, "%.9g");
        ct_json_number(t, sizeof t, st->text_loss, "%.9g");
        snprintf(kinds, sizeof kinds, " \"caption_loss\": %s, \"text_loss\": %s,", c, t);
        snprintf(kinds_text, sizeof kinds_text, " | caption %.4f text %.4f", (double)st->caption_loss,
                 (double)st->text_loss);
    }
    double mem[4] = {(double)ct_trainer_acts_bytes(tr) / (1 << 20),
                     (double)ct_tier_peak(CT_TIER_COMPUTE) / (1 << 20),
                     (double)ct_tier_in_use(CT_TIER_HOST) / (1 << 20), peak_rss_mb()};
    char loss_s[32], norm_s[32]; /* JSON has no NaN: a skipped step's may be */
    ct_json_number(loss_s, sizeof loss_s, st->loss, "%.9g");
    ct_json_number(norm_s, sizeof norm_s, st->grad_norm, "%.4f");
    metrics_line(o,
                 "{\"step\": %" PRId64 ", \"loss\": %s,%s%s \"lr\": %.6g, \"grad_norm\": %s, "
                 "\"tokens_per_s\": %.1f, \"mfu\": %.4f, \"step_s\": %.4f, \"comm_bytes\": %.0f, "
                 "\"expert_bytes\": %.0f,%s \"acts_mb\": %.2f, \"compute_peak_mb\": %.1f, \"host_mb\": %.1f, "
                 "\"offload_io_s\": %.4f, \"offload_wait_s\": %.4f, "
                 "\"peak_rss_mb\": %.1f%s%.9g%s%s%s}",
                 tr->step, loss_s, st->skipped ? " \"skipped\": true," : "", kinds, (double)st->lr, norm_s,
                 tok_s, mfu, st->seconds, st->comm_bytes, st->expert_bytes,
                 parallel_json(tr, st, pipe, sizeof pipe), mem[0], mem[1], mem[2], io_busy, io_wait, mem[3],
                 ", \"aux_loss\": ", (double)st->aux, moe[0] ? ", \"moe\": [" : "", moe, moe[0] ? "]" : "");
    CT_TRY(tb_step(tr, o, st, tok_s, mfu, mem));
    int show = o->tty || tr->step % tr->cfg.train.log_interval == 0 || tr->step == tr->cfg.train.steps;
    if (!show) return CT_OK;
    printf("%sstep %6" PRId64
           "/%d | loss %.4f%s | lr %.2e | norm %.2f%s | %.0f tok/s | MFU %4.1f%% | ETA %dm%02ds%s",
           o->tty ? "\r" : "", tr->step, tr->cfg.train.steps, (double)st->loss, kinds_text, (double)st->lr,
           (double)st->grad_norm, moe_text, tok_s, 100.0 * mfu, (int)(eta / 60), (int)eta % 60,
           o->tty ? "   " : "\n");
    fflush(stdout);
    return CT_OK;
}

static int due(int64_t step, int interval, int64_t last) {
    return step == last || (interval > 0 && step % interval == 0);
}

/* After each step: when a rank got SIGTERM, SIGINT or SIGUSR1 (preempt.h), every rank saves
 * this step (unless it just did) and the run ends. */
static ct_status stop_on_signal(ct_trainer *tr, run_output *o, int saved) {
    int sig;
    CT_TRY(ct_preempt_agree(tr->world, &sig));
    if (!sig) return CT_OK;
    if (!saved) CT_TRY(ct_trainer_save(tr));
    if (o->leader)
        printf("%scetus: stopped by %s at step %" PRId64 ": checkpoint saved, resume with the same command\n",
               o->tty ? "\n" : "", ct_preempt_name(sig), tr->step);
    fflush(stdout);
    return CT_OK;
}

static ct_status run_steps(ct_trainer *tr, run_output *o) {
    const ct_config *c = &tr->cfg;
    double smoothed = 0.0; /* exponential average of step time */
    int64_t stop = c->run.stop_at_step > 0 && c->run.stop_at_step < c->train.steps ? c->run.stop_at_step
                                                                                   : c->train.steps;
    int asked = stop < c->train.steps; /* run.stop_at_step ends this invocation */
    int last_whole = 0;                /* the last step's evaluation covered the whole split */
    int64_t first = tr->step;
    if (tr->stop_step > 0 && tr->stop_step < stop) {
        stop = tr->stop_step;
        asked = 0;
    }
    while (tr->step < stop && !ct_preempt_stopped()) {
        ct_step_stats st;
        CT_TRY(ct_trainer_step(tr, &st));
        o->step_peaks[0] = (float)((double)ct_tier_peak(CT_TIER_COMPUTE) / (1 << 20));
        o->step_peaks[1] = (float)peak_rss_mb();
        smoothed = smoothed == 0.0 ? st.seconds : 0.9 * smoothed + 0.1 * st.seconds;
        CT_TRY(progress(tr, o, &st, st.positions / st.seconds, smoothed * (double)(c->train.steps - tr->step)));
        last_whole = 0;
        if (due(tr->step, c->train.eval_interval, c->train.steps))
            CT_TRY(evaluate(tr, o, c->train.eval_batches, &last_whole));
        ct_tb_flush(o->tb); /* the step's one record, before its checkpoint */
        if (due(tr->step, c->train.sample_interval, c->train.steps)) CT_TRY(print_sample(tr, o));
        int saved = due(tr->step, c->train.ckpt_interval, stop);
        if (saved) CT_TRY(ct_trainer_save(tr));
        CT_TRY(stop_on_signal(tr, o, saved));
    }
    /* the run's end: the whole split, unless the last evaluation already covered it */
    if (tr->step == c->train.steps && tr->step > first && c->train.final_eval && !last_whole &&
        !ct_preempt_stopped())
        CT_TRY(evaluate(tr, o, 0, NULL));
    if (asked && o->leader && !ct_preempt_stopped())
        printf("stopped at step %" PRId64 " as run.stop_at_step asks; run again to continue\n", tr->step);
    return CT_OK;
}

/* Every rank's peaks over its training steps (before checkpoints at the end), as one
 * metrics line: {"event": "memory", "step": N, "ranks": [{"rank": 0, "compute_peak_mb": C,
 * "peak_rss_mb": R}, ...]}: what `cetus plan` predicts per rank. */
static ct_status memory_line(ct_trainer *tr, run_output *o) {
    int n = ct_world_size(tr->world);
    float *all = ct_alloc((size_t)n * 2 * sizeof *all, "the ranks' memory peaks");
    if (!all) return CT_ENOMEM;
    ct_status s = n > 1 ? ct_comm_allgather(tr->world, CT_AXIS_WORLD, o->step_peaks, all, 2) : CT_OK;
    if (n == 1) memcpy(all, o->step_peaks, sizeof o->step_peaks);
    if (s == CT_OK && o->metrics) {
        fprintf(o->metrics, "{\"event\": \"memory\", \"step\": %" PRId64 ", \"ranks\": [", tr->step);
        for (int r = 0; r < n; r++)
            fprintf(o->metrics, "%s{\"rank\": %d, \"compute_peak_mb\": %.1f, \"peak_rss_mb\": %.1f}",
                    r ? ", " : "", r, (double)all[2 * r], (double)all[2 * r + 1]);
        fprintf(o->metrics, "]}\n");
        fflush(o->metrics);
    }
    for (int r = 0; s == CT_OK && o->tb && r < n; r++) {
        char tag[64];
        snprintf(tag, sizeof tag, "memory/rank%d/compute_peak_mb", r);
        s = ct_tb_scalar(o->tb, tr->step, tag, all[2 * r]);
        snprintf(tag, sizeof tag, "memory/rank%d/peak_rss_mb", r);
        if (s == CT_OK) s = ct_tb_scalar(o->tb, tr->step, tag, all[2 * r + 1]);
    }
    ct_free(all);
    return s;
}

/* The most FLOP/s this run's threads can do (what MFU is against): the machine's measured
 * peak per CPU in the run's precision (fp32 FMAs, or for bf16 the faster of its dot products
 * and AMX tiles), times the CPUs a node's ranks use (their threads, at most all of its
 * CPUs), times the nodes (ranks over the node's ranks; the same kind of machine each). */
static double run_peak(const ct_trainer *tr, ct_peak *machine) {
    ct_peak_get(machine);
    int world = ct_world_size(tr->world);
    const char *env = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    int local = env && atoi(env) > 0 && atoi(env) <= world ? atoi(env) : world;
    int used = local * ct_runtime_threads();
    if (used > machine->threads) used = machine->threads;
    double per_cpu = (ct_gemm_is_bf16() ? machine->bf16 : machine->fp32) / machine->threads;
    return per_cpu * used * ((double)world / local);
}

ct_status ct_trainer_run(ct_trainer *tr) {
    const ct_config *c = &tr->cfg;
    run_output o = {0};
    o.leader = ct_trainer_is_leader(tr);
    o.tty = isatty(STDOUT_FILENO);
    ct_peak machine;
    o.peak_flops = run_peak(tr, &machine);
    if (!o.leader) {
        CT_TRY(run_steps(tr, &o));
        return memory_line(tr, &o);
    }
    CT_TRY(ct_mkdirs(c->run.dir));
    char path[1100];
    snprintf(path, sizeof path, "%s/metrics.jsonl", c->run.dir);
    o.metrics = fopen(path, "a");
    if (!o.metrics) return ct_fail(CT_EIO, "cannot open %s for appending", path);
    ct_status s = c->run.tensorboard ? ct_tb_open(&o.tb, c->run.dir, c->run.resume) : CT_OK;
    if (s != CT_OK) { /* no memory: its I/O problems only warn */
        fclose(o.metrics);
        return s;
    }
    /* the shards' tokenizer: a trained one, or GPT-2's, possibly in a padded vocabulary
     * (padding rows are never targets) */
    if ((tr->tokenizer.file[0] || c->model.vocab_size >= CT_TOKENIZER_VOCAB) &&
        ct_shard_tokenizer_load(&tr->tokenizer, &o.tok) != CT_OK) {
        ct_log("warning: %s; samples will show token ids", ct_last_error());
        o.tok = NULL;
    }
    printf("model: %d layers, d_model %d, %d heads, seq_len %d, vocab %d: %.2fM parameters\n", c->model.n_layer,
           c->model.d_model, c->model.n_head, c->model.seq_len, c->model.vocab_size,
           (double)ct_model_num_params_full(tr->model) / 1e6);
    int unique = ct_model_unique_blocks(&c->model);
    if (unique < c->model.n_layer) {
        char g[16] = "all";
        if (c->model.share_layers > 0) snprintf(g, sizeof g, "%d", c->model.share_layers);
        printf("sharing: %d blocks share %d set%s of weights (model.share_layers = %s)%s\n", c->model.n_layer,
               unique, unique == 1 ? "" : "s", g,
               c->delink.step > 0 ? "; delinked into the real model at delink.step" : "");
    }
    printf("peak: %.0f GFLOP/s fp32 measured on this machine's %d CPUs (%s FMAs; bf16 %.0f); MFU is against "
           "%.0f GFLOP/s, this run's CPUs in %s\n",
           machine.fp32 / 1e9, machine.threads, machine.width, machine.bf16 / 1e9, o.peak_flops / 1e9,
           c->train.precision);
    char gemm[768];
    ct_gemm_describe(gemm, sizeof gemm);
    printf("products: %s\n", gemm);
    printf("training: %d steps of %d x %d tokens x %d accumulation, from step %" PRId64
           "; run dir %s; backend %s\n",
           c->train.steps, c->train.batch_size, ct_config_train_seq_len(c), c->train.grad_accum, tr->step,
           c->run.dir, ct_backend_get()->name);
    if (ct_world_size(tr->world) > 1)
        printf("parallel: %d ranks, data %d x tensor %d x pipeline %d (experts over %d), ZeRO stage %d, %d "
               "threads each; %.2fM parameters on rank 0\n",
               ct_world_size(tr->world), ct_world_axis_size(tr->world, CT_AXIS_DATA),
               ct_world_axis_size(tr->world, CT_AXIS_TENSOR), ct_model_stages(tr->model),
               ct_model_expert_ranks(tr->model), c->parallel.zero, ct_runtime_threads(),
               (double)ct_model_num_params(tr->model) / 1e6);
    if (tr->pipe) print_stages(tr);
    print_offload(tr);
    fflush(stdout);
    metrics_line(
        &o,
        "{\"event\": \"start\", \"step\": %" PRId64 ", \"params\": %zu, \"flops_per_token\": %.6g, "
        "\"peak_flops\": %.6g, \"machine_fp32_flops\": %.6g, \"machine_bf16_flops\": %.6g, \"precision\": \"%s\", "
        "\"gemm\": \"%s\"}",
        tr->step, ct_model_num_params_full(tr->model),
        ct_model_flops_per_token(tr->model, ct_config_train_seq_len(c)), o.peak_flops, machine.fp32,
        machine.bf16, c->train.precision, gemm);
    s = run_steps(tr, &o);
    if (s == CT_OK) s = memory_line(tr, &o);
    if (o.tty) printf("\n");
    if (o.tok) ct_tokenizer_free(o.tok);
    ct_tb_close(o.tb);
    fclose(o.metrics);
    return s;
}
