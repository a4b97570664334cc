/* moe_4d.c: trains a small Mixture-of-Experts GPT on 8 ranks in a 4D layout: data 2 x
 * tensor 2 x pipeline 2 (1F1B over 8 micro-batches), each MoE layer's experts spread over
 * the 2 data ranks:
 *
 *   mpirun -np 8 ./build/examples/moe_4d [key=value ...]   (e.g. data.dir=..., train.steps=...)
 */
#include "cetus.h"
#include <stdio.h>

int main(int argc, char **argv) {
    static const char *settings[] = {
        "model.n_layer=4",        "model.d_model=128",      "model.n_head=4",
        "model.seq_len=64",       "model.vocab_size=50304", /* padded: splits over the tensor ranks */
        "model.moe_every=2",      "moe.n_experts=4",        "moe.top_k=2",
        "moe.d_hidden=256",       "train.batch_size=16",    "train.steps=50",
        "train.eval_interval=25", "run.dir=runs/moe_4d",
    };
    ct_run *run;
    ct_status s = ct_run_create(&run);
    for (size_t i = 0; s == CT_OK && i < sizeof settings / sizeof *settings; i++)
        s = ct_run_set(run, settings[i]);
    for (int i = 1; s == CT_OK && i < argc; i++) s = ct_run_set(run, argv[i]);
    if (s == CT_OK)
        s = ct_run_parallel(run, (ct_parallel){.data = 2,
                                               .tensor = 2,
                                               .pipeline = 2,
                                               .expert = 2,
                                               .micro_batches = 8,
                                               .schedule = "1f1b"});
    if (s == CT_OK) s = ct_run_train(run); /* reports its own failures */
    else
        fprintf(stderr, "moe_4d: %s\n", ct_last_error());
    ct_run_free(run);
    return s == CT_OK ? 0 : 1;
}
