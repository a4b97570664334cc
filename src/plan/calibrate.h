/* calibrate.h: measuring this machine for the planner (`cetus plan --calibrate`): GEMM rates
 * by shape through the kernels training uses, memory copy bandwidth, disk write and read
 * bandwidth (a scratch file, written with fsync and read back past the page cache), and MPI
 * bandwidth and latency between two local ranks. The result is one hardware group
 * (hardware.h) describing a rank of this machine: `count` ranks of the world, one node. */
#ifndef CT_PLAN_CALIBRATE_H
#define CT_PLAN_CALIBRATE_H

#include "plan/hardware.h"

typedef struct ct_world ct_world;

/* Measures into hw (one group named "local"). world: the ranks to time messages between
 * (ranks 0 and 1 ping-pong; with one rank the link is taken as a memory copy and the
 * message says so on stdout); every rank of world must call it. dir: where the disk's
 * scratch file goes (removed after). threads: the compute threads a rank uses. Progress
 * lines go to stdout on rank 0. */
ct_status ct_hw_calibrate(ct_hardware *hw, ct_world *world, const char *dir, int threads);

#endif
