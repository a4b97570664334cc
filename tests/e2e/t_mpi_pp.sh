# t_mpi_pp.sh: pipeline stages of the model through tests/tool_pp_check: as one process and
# under mpirun with 2 and 4 stages, each stage holds its blocks with the one-process values,
# a forward and a backward through the stages (boundary activations and gradients as
# point-to-point messages) give the one-process loss and gradients (the tied wte summed from
# the first and last stage), dense and MoE; more stages than blocks is refused.
source tests/e2e/lib.sh
check_tool pp 1e-5
echo "pipeline stages match one process"
