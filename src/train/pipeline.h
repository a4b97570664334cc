/* pipeline.h: pipeline-parallel training on one stage. This rank's rows of a batch [R, T]
 * are cut into M micro-batches of R/M rows that flow through the stages: each stage
 * receives a micro-batch's activations [R/M, T, C] from the previous stage, runs its blocks
 * and sends the output on; gradients flow back the same way. Messages are nonblocking
 * point-to-point sends on the pipeline axis (tag 2k forward, 2k+1 backward for micro-batch
 * k), with the next receive posted before the current micro-batch computes.
 *
 * Schedules (parallel.schedule):
 *   GPIPE  every micro-batch forward, then every backward in reverse: M micro-batches'
 *          activations are alive at once
 *   1F1B   stage s runs min(P-s-1, M) forwards, then alternates one forward and one
 *          backward, then drains the backwards: at most P-s micro-batches in flight, so
 *          activation memory is bounded by the depth of the pipeline, not by M
 * Both leave the same gradients (the sum over micro-batches, in the same order of
 * accumulation per stage up to the schedule's backward order). Each in-flight micro-batch
 * runs on a view of the stage model (ct_model_create_view): shared parameters and
 * gradients, activations of its own. The idle time of a stage (waiting for messages) is
 * the pipeline bubble, ideally (P-1)/(M+P-1) of a step. */
#ifndef CT_PIPELINE_H
#define CT_PIPELINE_H

#include "cetus.h"
#include "parallel/comm.h"
#include "model/sample.h"
#include "parallel/dp.h"

typedef enum ct_schedule { CT_SCHEDULE_1F1B = 0, CT_SCHEDULE_GPIPE } ct_schedule;
/* "1f1b" or "gpipe" -> *out; EINVAL naming parallel.schedule otherwise. */
ct_status ct_schedule_parse(const char *text, ct_schedule *out);
const char *ct_schedule_name(ct_schedule s);

typedef struct ct_pipe ct_pipe;

/* A pipeline over stage model m (rows per rank, sequence length T, `micro` micro-batches;
 * micro must divide rows). It takes over m's progress hook (create it after data
 * parallelism, whose hook it then calls) to move its messages while the stage computes;
 * free it before the data parallelism. */
ct_status ct_pipe_create(ct_pipe **out, ct_world *w, ct_model *m, ct_schedule schedule, int micro, int rows,
                         int T);
void ct_pipe_free(ct_pipe *p);
/* Micro-batches in flight at most on this stage (the views it keeps). */
int ct_pipe_slots(const ct_pipe *p);
int ct_pipe_micro_batches(const ct_pipe *p);
/* Bytes of activations held by every slot. */
size_t ct_pipe_acts_bytes(const ct_pipe *p);

/* One batch through the schedule: inputs/targets [rows, T] (every stage passes them; the
 * first reads the inputs, the last the targets). Gradients accumulate with grad_scale / M
 * per micro-batch; when reduce is set, the data-parallel reduction is armed for the
 * schedule's last backward. Router noise for micro-batch k is drawn from
 * noise_seed ^ ((row0 + k * rows / M) << 40), row0 being this rank's first row of the
 * global batch. *loss (the mean over micro-batches of the last stage's losses) and *aux
 * (the MoE auxiliary losses, summed over the stages) are the same on every stage. */
ct_status ct_pipe_train(ct_pipe *p, const int32_t *inputs, const int32_t *targets, float grad_scale,
                        uint64_t noise_seed, int row0, ct_dp *dp, int reduce, float *loss, float *aux);

/* Forward only (no gradients, no router noise), micro-batch after micro-batch: the mean
 * loss on every stage. */
ct_status ct_pipe_eval(ct_pipe *p, const int32_t *inputs, const int32_t *targets, float *loss);

/* ct_generate through the stages: each token's forward runs stage after stage, the last
 * samples (with rng) and broadcasts the token; on_token is called on every stage. */
ct_status ct_pipe_generate(ct_pipe *p, const int32_t *prompt, int n_prompt, int n_new, float temperature,
                           int top_k, ct_rng *rng, ct_token_fn on_token, void *ctx);

/* Seconds this stage waited for pipeline messages in the last ct_pipe_train. */
double ct_pipe_wait_s(const ct_pipe *p);

#endif
