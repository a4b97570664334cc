/* hardware.h: what the planner knows of the machines a layout runs on: groups of devices,
 * each with its matrix-product rate, memory, memory bandwidth, link to the host, disk, and
 * the links between devices in a node and between nodes. Read from a JSON file (a file
 * describes other hardware, e.g. 512 V100s in nodes of 8), or measured on this machine by
 * `cetus plan --calibrate` (which writes the same format, with a table of GEMM rates by
 * shape). All rates are per device, in bytes/s and FLOP/s; sizes in bytes.
 *
 * The file (every key required unless marked optional; numbers > 0):
 *   {"name": "512 x V100-SXM2-32GB",
 *    "groups": [{"name": "v100", "count": 512, "per_node": 8,
 *                "memory_gib": 32, "host_memory_gib": 768,        (host: per node)
 *                "matmul_tflops": 15.7, "matmul_tflops_bf16": 125, (bf16 optional)
 *                "memory_gbps": 900, "host_link_gbps": 12,
 *                "disk_read_gbps": 2, "disk_write_gbps": 1,       (per node)
 *                "intra_gbps": 150, "intra_latency_us": 5,
 *                "inter_gbps": 12.5, "inter_latency_us": 10,
 *                "process_mib": 35,        (optional: a rank's resident memory before any model)
 *                "process_leader_mib": 45, (optional: rank 0's, with the tokenizer)
 *                "cores": 0,               (optional: CPU cores a node's ranks share; 0 = a device each)
 *                "gemm": [{"m": 512, "n": 512, "k": 512, "gflops": 180.0}, ...]}]}  (optional)
 * GB/s and TFLOP/s are decimal (1e9, 1e12); GiB binary. */
#ifndef CT_PLAN_HARDWARE_H
#define CT_PLAN_HARDWARE_H

#include "cetus.h"
#include <stddef.h>

#define CT_HW_MAX_GROUPS 8
#define CT_HW_MAX_GEMM 32

typedef struct ct_gemm_rate {
    int m, n, k;  /* out [m, n] = in [m, k] x w [k, n] */
    double flops; /* FLOP/s measured */
} ct_gemm_rate;

typedef struct ct_hw_group {
    char name[64];
    int count, per_node, cores;
    double memory_bytes, host_bytes;    /* device memory; host memory per node */
    double matmul_flops, matmul_bf16;   /* large-GEMM FLOP/s (bf16: 0 when not given) */
    double memory_bw, host_bw;          /* device memory; device <-> host */
    double disk_read_bw, disk_write_bw; /* per node */
    double intra_bw, intra_latency;     /* between devices of a node (s) */
    double inter_bw, inter_latency;     /* between nodes */
    double base_rss;                    /* a cetus rank's own resident memory before any model
                                         * (libraries, MPI): optional "process_mib", 0 if unknown */
    double leader_rss;                  /* rank 0's, which also holds the tokenizer: optional
                                         * "process_leader_mib" (0: as base_rss) */
    int n_gemm;
    ct_gemm_rate gemm[CT_HW_MAX_GEMM]; /* measured shapes, for small products */
} ct_hw_group;

typedef struct ct_hardware {
    char name[128];
    int n_groups;
    ct_hw_group groups[CT_HW_MAX_GROUPS];
} ct_hardware;

/* Reads and checks a hardware file; a missing or nonsensical field fails naming the file,
 * the group and the key. */
ct_status ct_hw_load(ct_hardware *hw, const char *path);
/* The same from JSON text (name: what messages call it). */
ct_status ct_hw_parse(ct_hardware *hw, const char *text, const char *name);
/* Writes hw as a hardware file (atomically). */
ct_status ct_hw_save(const ct_hardware *hw, const char *path);
/* Devices in all groups. */
int ct_hw_devices(const ct_hardware *hw);
/* The group device d (0-based, groups in order) belongs to. */
const ct_hw_group *ct_hw_group_of(const ct_hardware *hw, int d);
/* FLOP/s of one [m, k] x [k, n] product on a device of g: interpolated from the measured
 * table by the product's size when there is one, else the large-GEMM rate. */
double ct_hw_gemm_flops(const ct_hw_group *g, int m, int n, int k);

#endif
