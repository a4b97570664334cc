/* devices.c: which hardware a planned rank runs on: ranks take the groups' devices in
 * order (pipeline stages outermost), a CPU machine takes any number of ranks on its one
 * node; a stage's smallest device memory and its slowest device. */
#include "plan/plan_internal.h"

int ct_plan_stage_of(const ct_plan *p, int rank) {
    int per = p->layout.data * p->layout.tensor;
    return per ? rank / per : 0;
}

int ct_plan_one_cpu_node(const ct_hardware *hw) { return hw->n_groups == 1 && hw->groups[0].cores > 0; }

const ct_hw_group *ct_plan_group(const ct_hardware *hw, int r) {
    return ct_plan_one_cpu_node(hw) ? &hw->groups[0] : ct_hw_group_of(hw, r);
}

/* The smallest device memory among stage s's ranks, and the slowest device's group. */
double ct_plan_stage_memory(const ct_plan *p, const ct_hardware *hw, int s) {
    int per = p->layout.data * p->layout.tensor;
    double least = 0.0;
    for (int r = s * per; r < (s + 1) * per; r++) {
        double m = ct_plan_group(hw, r)->memory_bytes;
        least = r == s * per || m < least ? m : least;
    }
    return least;
}

const ct_hw_group *ct_plan_stage_slowest(const ct_plan *p, const ct_hardware *hw, int s) {
    int per = p->layout.data * p->layout.tensor;
    const ct_hw_group *slow = ct_plan_group(hw, s * per);
    for (int r = s * per; r < (s + 1) * per; r++)
        if (ct_plan_group(hw, r)->matmul_flops < slow->matmul_flops) slow = ct_plan_group(hw, r);
    return slow;
}
