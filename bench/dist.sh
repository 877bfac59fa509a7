#!/bin/sh
# Data-parallel throughput on this machine (BENCHMARKS.md, "Data-parallel
# training"): training images/s of 1 rank x 2 threads against 2 ranks x 1
# thread, for resnet20 on Fashion-MNIST (28 px, batch 128) and resnet50 on
# Fashion-MNIST upscaled to 128 px (batch 32), and the share of the step the
# ranks spend waiting for gradient sums after backward (communication not
# hidden behind the backward pass); then MPI_Allreduce bandwidth on loopback.
#
# Each configuration runs S1 and S2 steps; the per-step time is the
# difference of the two wall times over S2 - S1 steps, so start-up, data
# loading and the first step's planning drop out. Median of REPS pairs.
#   bench/dist.sh [BUILD_DIR] [REPS]
B=${1:-build}
REPS=${2:-3}
R=$B/resnet
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 NO_COLOR=1
T=$(mktemp -d /tmp/rn-dist-bench.XXXXXX)
trap 'rm -rf "$T"' EXIT

# wall CMD...: seconds the command takes (its output in $T/out).
wall() {
    s=$(date +%s.%N)
    "$@" > "$T/out" 2>&1 || { echo "failed: $*" >&2; tail -5 "$T/out" >&2; }
    e=$(date +%s.%N)
    echo "$e - $s" | bc -l
}

# median of the numbers on stdin.
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

# run NAME BATCH S1 S2 ARGS...: prints one row: ms/step and img/s for 1x2 and 2x1, ratio, waited share.
run() {
    name=$1 bs=$2 s1=$3 s2=$4
    shift 4
    for cfg in 1x2 2x1; do
        : > "$T/$cfg"
        : > "$T/$cfg.wait"
        for i in $(seq "$REPS"); do
            for s in $s1 $s2; do
                if [ $cfg = 1x2 ]; then
                    t=$(wall "$R" train --threads 2 --bs "$bs" --steps "$s" "$@")
                else
                    t=$(wall mpirun -np 2 "$R" train --threads 1 --bs "$bs" --steps "$s" "$@")
                    [ "$s" = "$s2" ] && sed -n 's/.*; \([0-9.]*\) s of the run waited.*/\1/p' "$T/out" >> "$T/$cfg.wait"
                fi
                eval "t_$s=$t"
            done
            eval "echo \"(\$t_$s2 - \$t_$s1) / ($s2 - $s1)\"" | bc -l >> "$T/$cfg"
        done
    done
    a=$(median < "$T/1x2") b=$(median < "$T/2x1") w=$(median < "$T/2x1.wait")
    awk -v n="$name" -v a="$a" -v b="$b" -v w="$w" -v bs="$bs" -v s="$s2" 'BEGIN {
        printf "| %-34s | %7.1f | %6.0f | %7.1f | %6.0f | %5.2fx | %5.1f%% |\n", n, a * 1e3, bs / a, b * 1e3, bs / b, a / b,
               100 * w / (s * b) }'
}

echo "| network | 1x2 ms/step | 1x2 img/s | 2x1 ms/step | 2x1 img/s | 2x1 / 1x2 | waited |"
echo "|---|---|---|---|---|---|---|"
run "resnet20, Fashion-MNIST 28 px" 128 20 80 --arch resnet20 --no-augment --epochs 1
run "resnet50, Fashion-MNIST at 128 px" 32 3 9 --arch resnet50 --size 128 --no-augment --epochs 1
echo
mpirun -np 2 "$B/bench_allreduce"
