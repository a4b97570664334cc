# t_mpi_ep.sh: the expert-parallel MoE layer through tests/tool_ep_check: as one process and
# under mpirun with expert groups of 2 and 4 ranks, every routing mode (dropless) matches the
# one-process layer (outputs, input gradients, each rank's experts' gradients, the router's
# summed over the ranks), and a router that sends every token to one expert (other experts
# and ranks get no rows) runs without a hang, with and without capacity.
source tests/lib.sh
TOOL="$BUILD/tests/tool_ep_check"
[ -x "$TOOL" ] || fail "$TOOL is not built"
out=$(timeout 60 "$TOOL" 1e-5) || fail "one process: $out"
grep "ep check ok" <<<"$out" || fail "no success line: $out"
for np in 2 4; do
    out=$("${mpi_env[@]}" "${MPIRUN[@]}" -np $np "$TOOL" 1e-5 2>&1) || fail "$np ranks: $out"
    grep "ep check ok" <<<"$out" || fail "no success line: $out"
done
echo "the expert-parallel MoE layer matches one process"
