# bench/mpi_lib.sh: shared by the parallel benchmarks (run_dp.sh, run_ep.sh, run_zero.sh;
# sourced from the repository root): builds cetus, prepares the default corpus if needed,
# makes a scratch directory $out removed on exit, and MPIRUN, mpirun for one box as root.
set -euo pipefail
make -s build/cetus
[ -f data/pydocs/meta.json ] || ./build/cetus prepare
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
MPIRUN=(mpirun --allow-run-as-root --oversubscribe --bind-to none --mca pml ob1 --mca btl self,vader
        --mca btl_vader_single_copy_mechanism none)
