# t_mpi_comm.sh: the communication layer (src/parallel/comm.h) through tests/tool_comm_check:
# as a single process without mpirun, and under mpirun with 1, 2, 4 (and 8) ranks in the
# layouts data, tensor, data x tensor, with expert groups and with pipeline stages. Each run
# checks coordinates and group membership and every collective against a local expectation,
# exactly, and identical bytes on every rank; a rerun gives the same digest (determinism);
# a layout that does not fit is refused with the layouts that do; a rank waiting 1 s for a
# late peer uses well under 1 s of CPU.
source tests/e2e/lib.sh
TOOL="$BUILD/tests/tool_comm_check"
[ -x "$TOOL" ] || fail "$TOOL is not built"
command -v mpirun >/dev/null || fail "mpirun not found (scripts/setup.sh installs openmpi-bin)"

check() { # NP DATA TENSOR [PIPELINE EXPERT] -> prints the digest
    local np=$1; shift
    local out
    if [ "$np" = none ]; then
        out=$(timeout 60 "$TOOL" check "$@") || fail "single process check $* failed"
    else
        out=$("${mpi_env[@]}" "${MPIRUN[@]}" -np "$np" "$TOOL" check "$@" 2>&1) ||
            fail "check with $np ranks, layout $* failed: $out"
    fi
    grep -q "comm check ok" <<<"$out" || fail "no success line for $np ranks, layout $*: $out"
    echo "$out" | head -n 1 >&2
    sed -n 's/^digest //p' <<<"$out"
}

check none 1 1 >/dev/null
out=$("$TOOL" check 1 1)
grep -q "(no MPI)" <<<"$out" || fail "single process without mpirun did not run without MPI"
check 1 1 1 >/dev/null
check 2 2 1 >/dev/null
check 3 3 1 >/dev/null
check 2 1 2 >/dev/null
d1=$(check 4 4 1)
check 4 1 4 >/dev/null
d2=$(check 4 2 2)
check 4 2 2 1 2 >/dev/null
check 8 2 2 2 2 >/dev/null
[ "$(check 4 4 1)" = "$d1" ] || fail "data=4: digest differs between two runs"
[ "$(check 4 2 2)" = "$d2" ] || fail "data=2 x tensor=2: digest differs between two runs"
echo "reruns give identical digests ($d1, $d2)"

# refusals: before any work, naming the keys and what fits
refuse() { # NP WANT-TEXT LAYOUT...
    local np=$1 want=$2; shift 2
    local out rc=0
    out=$("${mpi_env[@]}" "${MPIRUN[@]}" -np "$np" "$TOOL" layout "$@" 2>&1) || rc=$?
    [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || fail "layout $* with $np ranks: exit $rc"
    grep -qF -- "$want" <<<"$out" || fail "layout $* with $np ranks: message lacks '$want': $out"
    echo "ok: refused $* on $np ranks"
}
refuse 4 "cetus: parallel.data=3 x parallel.tensor=2 needs 6 ranks but mpirun started 4; layouts that fit 4 ranks: data=4, data=2 x tensor=2, tensor=4" 3 2
refuse 4 "parallel.tensor=3 needs a multiple of 3 ranks but mpirun started 4" 0 3
refuse 4 "parallel.expert=3 must divide parallel.data=4" 4 1 1 3
expect_error "parallel.data=2 needs 2 ranks but the process was started without mpirun (1 rank); layouts that fit 1 rank: data=1" \
    "$TOOL" layout 2 1
out=$("${mpi_env[@]}" "${MPIRUN[@]}" -np 4 "$TOOL" layout 0 2)
grep -qF "layout parallel.data=2 x parallel.tensor=2" <<<"$out" || fail "data=0 did not take the free ranks: $out"

# waiting without spinning: ranks 1..3 wait 1 s for rank 0 (the tool fails above 20% CPU)
out=$("${mpi_env[@]}" "${MPIRUN[@]}" -np 4 "$TOOL" idle 1 2>&1) || fail "idle wait: $out"
echo "$out"
echo "t_mpi_comm: all checks passed"
