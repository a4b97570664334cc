/* plan_internal.h: what the planner's files share: plan.c sizes memory and calls
 * plan_time.c for each stage's work and the step's time; search.c plans at a budget. */
#ifndef CT_PLAN_INTERNAL_H
#define CT_PLAN_INTERNAL_H

#include "plan/plan.h"

enum { CT_PLAN_MAX_UNITS = 4098 }; /* model.n_layer + 2 at its largest */

/* The hardware group rank r runs on. A CPU machine (one group with cores) takes any number
 * of ranks, all on its one node, sharing its cores. */
const ct_hw_group *ct_plan_group(const ct_hardware *hw, int r);
/* Whether hw is such a machine. */
int ct_plan_one_cpu_node(const ct_hardware *hw);

/* Stage s's ranks' smallest device memory, and the group of its slowest device (data
 * parallel ranks step together: the slowest sets the pace). */
double ct_plan_stage_memory(const ct_plan *p, const ct_hardware *hw, int s);
const ct_hw_group *ct_plan_stage_slowest(const ct_plan *p, const ct_hardware *hw, int s);

/* ct_plan_make with the automatic offload policy's budget given (0: memory.compute_budget). */
ct_status ct_plan_make_at(ct_plan *p, const ct_config *c, int world, const ct_hardware *hw, double budget);
/* Stage s's FLOPs, bytes sent per axis and seconds of compute, optimizer and exposed
 * communication per step, on model m (stage s's table). */
void ct_plan_stage_work(ct_plan *p, const ct_config *c, const ct_model *m, int s, const ct_hardware *hw);
/* The step: the slowest stage through the pipeline schedule, tokens/s and MFU. */
void ct_plan_time(ct_plan *p, const ct_config *c, const ct_hardware *hw);

#endif
