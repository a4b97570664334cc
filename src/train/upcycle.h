/* upcycle.h: turning a dense checkpoint into an MoE one ("sparse upcycling"): every expert of
 * an MoE block starts as a copy of that block's dense MLP, the router starts small and
 * random, everything else is copied; the optimizer state starts fresh at step 0. */
#ifndef CT_UPCYCLE_H
#define CT_UPCYCLE_H

#include "train/config.h"

/* Reads the dense checkpoint in_ckpt and writes out_run_dir/ckpt/step_00000000, which
 * `cetus train` with the same target config (run.dir = out_run_dir) resumes. The target
 * must match the dense model's shape, put MoE blocks somewhere (model.moe_every > 0) and
 * give experts the dense MLP's size (moe.d_hidden = 4 * d_model). */
ct_status ct_upcycle(const char *in_ckpt, const ct_config *target, const char *out_run_dir);

#endif
