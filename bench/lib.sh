# bench/lib.sh: shared by the cetus-vs-PyTorch benchmark scripts (sourced): PyTorch's
# environment, how busy the cores are, waiting for a quiet machine, medians.
# PyTorch's fastest settings on this machine: the OpenMP build of OpenBLAS, threads bound
# one per core; cetus pins its own threads (ct_runtime_init(0, 1)).
torch_env=(env LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp
           OMP_PROC_BIND=close OMP_PLACES=cores)
ncores=$(nproc)

# busy: percent of all cores used (by anything: we run nothing meanwhile) over 2 seconds
busy() {
    local a b
    a=$(head -n1 /proc/stat); sleep 2; b=$(head -n1 /proc/stat)
    echo "$a $b" | awk '{ t1 = 0; for (i = 2; i <= 11; i++) t1 += $i; i1 = $5 + $6;
                          t2 = 0; for (i = 13; i <= 22; i++) t2 += $i; i2 = $16 + $17;
                          printf "%.0f", 100 * (1 - (i2 - i1) / (t2 - t1)) }'
}
wait_quiet() {
    [ -n "$quiet" ] || { cpu=$(busy); return 0; }
    for _ in $(seq 100); do cpu=$(busy); [ "$cpu" -lt "$quiet" ] && return 0; done
}
median() { sort -g | awk '{v[NR]=$1} END {if (NR==0) print "nan"; else if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }
