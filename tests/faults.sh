#!/bin/sh
# Fault injection on small training runs (optimized build). Every fault must
# leave a checkpoint that --resume continues from, to weights byte-identical
# to those of a run that was never disturbed (same seed, same threads):
#   1. kill -9 at random moments (24 kills), each followed by a resume check;
#   2. kill -9 at fixed points of checkpoint writes (strace fault injection:
#      before every rename and fsync of a save, the torn state/model window
#      twice in a row), each followed by a resume check;
#   3. SIGINT and SIGTERM: the step is finished, a checkpoint written, the
#      message says how to resume, the exit code is 128 + signal;
#   4. divergence: a NaN gradient (RN_TEST_NAN_GRAD_STEP) and a too-high
#      rate stop with the step and the last good checkpoint named, the file
#      untouched; --skip-nonfinite skips the step without a trace;
#   5. disk full (a 1 MB tmpfs, as root) and a file-size limit (any user):
#      a clear error and the previous checkpoint intact;
#   6. a batch that does not fit in memory is refused before training;
#   7. valgrind memcheck on a short run (when valgrind is installed).
# The last lines print the table RELIABILITY.md records.
# Usage: tests/faults.sh BUILD_DIR
B=$(cd "${1:-build}" && pwd)/resnet
PY=/usr/bin/python3
T=$(mktemp -d /tmp/rn-faults.XXXXXX)
MNT=""
trap '[ -n "$MNT" ] && umount "$MNT" 2>/dev/null; rm -rf "$T"' EXIT
pass=0 fail=0 table=""
ok() { pass=$((pass + 1)); echo "ok $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }
check() { what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
# row FAULT COUNT OUTCOME LOST: one line of the summary table.
row() { table="$table| $1 | $2 | $3 | $4 |
"; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }

"$PY" tests/make_data.py fmnist-subset "$T/fm" 256 64 || { echo "cannot build the data set"; exit 1; }
# 16 steps per epoch, 48 in all, a checkpoint after every step
D="--data idx:$T/fm --blocks 1,1 --widths 8,16 --bs 16 --epochs 3 --seed 1 --threads 1 --save-every 1"
t0=$(now_ms)
"$B" train $D --out "$T/ref" > /dev/null 2>&1 || { echo "the reference run failed"; exit 1; }
W=$(($(now_ms) - t0))
echo "reference run: $W ms"

# resumed_step FILE: the step a resumed run started from ("resuming DIR at ... (step S)"), or -1.
resumed_step() { sed -n 's/^resnet: resuming .* (step \([0-9]*\))$/\1/p' "$1" | tail -1 | grep . || echo -1; }

# probe DIR: resumes a copy of DIR to the end without intermediate saves;
# passes when it starts from a checkpoint and ends with the reference's
# weights. Sets probe_step to the step it started from.
probe() {
    rm -rf "$T/probe"
    cp -r "$1" "$T/probe"
    "$B" train --resume "$T/probe" --save-every 1000000 > "$T/probe.out" 2> "$T/probe.err"
    code=$?
    probe_step=$(resumed_step "$T/probe.err")
    [ "$code" = 0 ] && [ "$probe_step" -ge 0 ] && cmp -s "$T/probe/last.safetensors" "$T/ref/last.safetensors"
}

# start DIR: the arguments of a run into DIR: a resume when DIR holds a model, else a fresh run.
start_args() { if [ -f "$1/last.safetensors" ]; then echo "train --resume $1"; else echo "train $D --out $1"; fi; }

# 1. kill -9 at random moments of runs that resume each other
kills=0 in_write=0 finished=0 bad_resumes=0 lost=0 last=-1 seed=1 dir="$T/k0"
while [ $kills -lt 24 ]; do
    "$B" $(start_args "$dir") > /dev/null 2> "$T/run.err" &
    pid=$!
    sleep "$(awk -v s=$seed -v w=$W 'BEGIN {srand(s); printf "%.3f", rand() * w / 2000}')"
    seed=$((seed + 1))
    kill -9 $pid 2> /dev/null
    { wait $pid; } 2> /dev/null
    code=$?
    if [ "$code" = 0 ]; then # the run ended before the kill: it must have the reference's weights
        finished=$((finished + 1))
        cmp -s "$dir/last.safetensors" "$T/ref/last.safetensors" || lost=$((lost + 1))
        dir="$T/k$finished" last=-1
        continue
    fi
    [ "$code" = 137 ] || { bad "random kills: a run exited with $code: $(tail -1 "$T/run.err")"; break; }
    kills=$((kills + 1))
    ls "$dir" 2> /dev/null | grep -q '\.tmp\.' && in_write=$((in_write + 1))
    [ -f "$dir/last.safetensors" ] || continue # killed before the first checkpoint was complete
    if probe "$dir" && [ "$probe_step" -ge "$last" ]; then
        last=$probe_step
    else
        bad_resumes=$((bad_resumes + 1))
        echo "after kill $kills: resume from step $probe_step (before: $last), exit $code: $(tail -1 "$T/probe.err")"
    fi
done
check "24 random kill -9: every resume starts at or after the last checkpoint seen and ends with identical weights ($kills kills, $in_write inside a file write, $finished runs finished)" \
    test "$kills" = 24 -a "$bad_resumes" = 0 -a "$lost" = 0
row "kill -9 at a random moment (runs of 48 steps, a checkpoint per step)" "$kills ($in_write inside a file write)" \
    "every resume continued from the last complete checkpoint; final weights identical to an undisturbed run" \
    "none ($bad_resumes bad resumes)"

# 2. kill -9 just before given syscalls of checkpoint writes (strace injects
#    SIGKILL on entry; the call does not run). A fresh run saves after step 1
#    and 2: renames 1-3 and fsyncs 1-4 are the first save's (state away,
#    state in, model in; state file, directory, model file, directory).
if strace -o /dev/null true 2> /dev/null; then # absent, or ptrace not allowed (some containers)
    dir="$T/s" n=0 bad_points=""
    for point in rename:6 rename:3 rename:3 rename:2 rename:1 fsync:2 fsync:4 rename:3 fsync:1 fsync:3 rename:3; do
        call=${point%:*} when=${point#*:}
        strace -qq -o /dev/null -e trace="/^$call" -e inject="/^$call:error=EIO:signal=KILL:when=$when" \
            "$B" $(start_args "$dir") > /dev/null 2> "$T/run.err"
        code=$?
        n=$((n + 1))
        if [ "$code" != 137 ] || ! probe "$dir"; then
            bad_points="$bad_points $point(exit $code, probe: $(tail -1 "$T/probe.err"))"
        fi
    done
    check "kill -9 before each rename and fsync of a save, the state/model window three times: every resume is exact" \
        test -z "$bad_points"
    [ -n "$bad_points" ] && echo "  failed at:$bad_points"
    row "kill -9 before a rename or fsync of a checkpoint write (strace), incl. 3 times between state and model" \
        "$n" "every resume continued and ended with identical weights" "none"
else
    echo "skip: strace is missing or cannot trace here (the fixed-point kills need it)"
fi

# 3. SIGINT and SIGTERM stop after the current step with a checkpoint
D30="--data idx:$T/fm --blocks 1,1 --widths 8,16 --bs 16 --epochs 30 --seed 1 --threads 1"
t0=$(now_ms)
"$B" train $D30 --out "$T/ref30" > /dev/null 2>&1
W30=$(($(now_ms) - t0))
for sig in INT:130 TERM:143; do
    want=${sig#*:} sig=${sig%:*}
    rm -rf "$T/sig"
    # a shell without job control starts background jobs with SIGINT ignored: restore it
    "$PY" -c 'import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])' \
        "$B" train $D30 --out "$T/sig" > /dev/null 2> "$T/sig.err" &
    pid=$!
    # the first epoch's checkpoint shows that training (and the signal handler) is on
    tries=0
    while [ ! -f "$T/sig/last.safetensors" ] && [ $tries -lt 3000 ]; do sleep 0.01; tries=$((tries + 1)); done
    sleep "$(awk -v w=$W30 'BEGIN {printf "%.3f", w / 6000}')"
    kill -$sig $pid
    { wait $pid; } 2> /dev/null
    code=$?
    check "SIG$sig: exit $code is $want" test "$code" = "$want"
    check "SIG$sig: says where it stopped and how to resume" \
        grep -q "interrupted by SIG$sig at epoch .*checkpoint written to $T/sig; continue with: resnet train --resume $T/sig" "$T/sig.err"
    stopped=$(sed -n 's/.*(step \([0-9]*\)); checkpoint.*/\1/p' "$T/sig.err")
    "$B" train --resume "$T/sig" > /dev/null 2> "$T/sig2.err"
    check "SIG$sig: the checkpoint is at the step it stopped at (${stopped:-none})" test "$(resumed_step "$T/sig2.err")" = "${stopped:--2}"
    check "SIG$sig: the resumed run ends with identical weights" cmp -s "$T/sig/last.safetensors" "$T/ref30/last.safetensors"
done
row "SIGINT, SIGTERM during training" "2" "step finished, checkpoint written, resume command printed, exit 130/143; resumed weights identical" "none"

# 4. divergence
DS="--data idx:$T/fm --blocks 1,1 --widths 8,16 --bs 16 --epochs 3 --seed 1 --threads 1 --save-every 3"
RN_TEST_NAN_GRAD_STEP=20 "$B" train $DS --out "$T/nan" > /dev/null 2> "$T/nan.err"
code=$?
check "NaN gradient at step 20: exit 1" test "$code" = 1
check "NaN gradient: names the step and the last good checkpoint" \
    grep -q "step 20: a gradient or batchnorm statistic is not finite.*last good checkpoint is $T/nan/last.safetensors (step 18)" "$T/nan.err"
"$B" train $DS --steps 18 --out "$T/s18" > /dev/null 2>&1
check "NaN gradient: the checkpoint is the step-18 one, untouched" cmp -s "$T/nan/last.safetensors" "$T/s18/last.safetensors"
"$B" train --resume "$T/nan" > /dev/null 2>&1
check "NaN gradient: resuming (without the fault) ends with identical weights" cmp -s "$T/nan/last.safetensors" "$T/ref/last.safetensors"
"$B" train $DS --opt sgd --lr 1000 --out "$T/lr" > /dev/null 2> "$T/lr.err"
code=$?
check "--lr 1000: exit 1 naming the step and the last good checkpoint" \
    sh -c '[ "$1" = 1 ] && grep -q "step [0-9]*: .* not finite.*last good checkpoint is .*(step [0-9]*)" "$2"' _ "$code" "$T/lr.err"
check "--lr 1000: the checkpoint holds finite numbers only" "$PY" -c "
import json, struct, sys, numpy as np
b = open(sys.argv[1], 'rb').read(); n = struct.unpack('<Q', b[:8])[0]; h = json.loads(b[8:8 + n])
sys.exit(any(not np.isfinite(np.frombuffer(b[8 + n + v['data_offsets'][0]:8 + n + v['data_offsets'][1]], np.float32)).all()
             for k, v in h.items() if k != '__metadata__' and v['dtype'] == 'F32'))" "$T/lr/last.safetensors"
RN_TEST_NAN_GRAD_STEP=5 "$B" train $DS --steps 5 --skip-nonfinite --out "$T/skip" > /dev/null 2> "$T/skip.err"
"$B" train $DS --steps 4 --out "$T/s4" > /dev/null 2>&1
check "--skip-nonfinite: step 5 skipped and reported" grep -q "skipped 1 steps .*(the first: step 5)" "$T/skip.err"
check "--skip-nonfinite: the skipped step left no trace (weights and BN statistics equal 4 clean steps)" \
    cmp -s "$T/skip/last.safetensors" "$T/s4/last.safetensors"
row "NaN gradient (injected), learning rate 1000" "2" "stopped naming the step and the last good checkpoint; that file untouched, finite, resumable" "none"
row "NaN gradient with --skip-nonfinite" "1" "step skipped, BN statistics restored, reported" "none"

# expect_intact DIR COPY WHAT: after a failed save the model file is the one
# saved before, the state that matches it is still there, and a resume from
# DIR ends with the reference's weights.
expect_intact() {
    check "$3: last.safetensors untouched" cmp -s "$1/last.safetensors" "$2/last.safetensors"
    check "$3: no temp file left" sh -c '! ls "$1" | grep -q "\.tmp\."' _ "$1"
    check "$3: resumes from the previous checkpoint, to identical weights" probe "$1"
}

# 5. disk full (a tmpfs, root only) and a file-size limit (anyone)
if [ "$(id -u)" = 0 ] && mkdir "$T/mnt" && mount -t tmpfs -o size=1m tmpfs "$T/mnt" 2> /dev/null; then
    MNT="$T/mnt"
    "$B" train $D --steps 4 --out "$MNT/run" > /dev/null 2>&1
    cp -r "$MNT/run" "$T/before"
    dd if=/dev/zero of="$MNT/fill" bs=4k > /dev/null 2>&1 # until the disk is full
    "$B" train --resume "$MNT/run" > /dev/null 2> "$T/full.err"
    code=$?
    check "disk full: exit 1 with a message naming the cause" \
        sh -c '[ "$1" = 1 ] && grep -q "resnet: error: cannot write the checkpoint: .*No space left on device (the previous checkpoint in .* is intact)" "$2"' \
        _ "$code" "$T/full.err"
    cat "$T/full.err"
    expect_intact "$MNT/run" "$T/before" "disk full"
    rm -f "$MNT/fill"
    "$B" train --resume "$MNT/run" > /dev/null 2>&1
    check "disk full: after freeing space the run ends with identical weights" cmp -s "$MNT/run/last.safetensors" "$T/ref/last.safetensors"
    umount "$MNT" && MNT=""
    row "disk full (1 MB tmpfs filled while training)" "1" "clear error; previous checkpoint intact; resumed after freeing space" "none"
else
    echo "skip: disk full needs root to mount a tmpfs (the file-size limit below still runs)"
fi
rm -rf "$T/fs" "$T/before"
"$B" train $D --steps 4 --out "$T/fs" > /dev/null 2>&1
cp -r "$T/fs" "$T/before"
# the state file (~44 kB) exceeds the limit, the model (~26 kB) does not; SIGXFSZ ignored: write() fails with EFBIG
sh -c 'trap "" XFSZ; exec prlimit --fsize=30000 "$@"' _ "$B" train --resume "$T/fs" > /dev/null 2> "$T/fsize.err"
code=$?
check "file-size limit: exit 1 with a message naming the cause" \
    sh -c '[ "$1" = 1 ] && grep -q "cannot write the checkpoint: .*File too large (the previous checkpoint" "$2"' _ "$code" "$T/fsize.err"
expect_intact "$T/fs" "$T/before" "file-size limit"
row "file size limit (RLIMIT_FSIZE) below the checkpoint size" "1" "clear error; previous checkpoint intact" "none"

# 6. memory: a run that would not fit is refused before training, with the plan's figures
M="--data idx:$T/fm --blocks 1,1 --widths 8,16 --bs 16 --epochs 1 --steps 1 --threads 1"
# need_gb FILE: the "needs X GB" figure of a refusal.
need_gb() { sed -n 's/.*needs \([0-9.]*\) GB more memory.*/\1/p' "$1"; }
# a 1 GB address space (ulimit -v) and 2048x2048 inputs: the stem's output alone is 16*2048*2048*8*4 bytes = 2.15 GB
prlimit --as=1000000000 "$B" train $M --size 2048 > /dev/null 2> "$T/mem.err"
code=$?
need=$(need_gb "$T/mem.err")
check "RLIMIT_AS 1 GB, 2048x2048: refused with exit 1, naming the limit" \
    sh -c '[ "$1" = 1 ] && grep -q "batches of 16 at 2048x2048 needs .* available (RLIMIT_AS" "$2"' _ "$code" "$T/mem.err"
check "RLIMIT_AS 1 GB, 2048x2048: the plan (${need:-none} GB) is at least the stem's output (2.15 GB)" \
    awk -v n="${need:-0}" 'BEGIN {exit !(n >= 2.147)}'
prlimit --as=1000000000 "$B" train $M --size 128 > /dev/null 2>&1
check "RLIMIT_AS 1 GB, 128x128: runs" test $? = 0
avail=$(awk '/MemAvailable/ {print $2 * 1024}' /proc/meminfo)
S=$(awk -v a="$avail" 'BEGIN {print int(sqrt(a * 1.25 / 512)) + 1}') # the stem's output alone is 1.25 x MemAvailable
t0=$(now_ms)
"$B" train $M --size "$S" > /dev/null 2> "$T/mem2.err"
code=$? ms=$(($(now_ms) - t0))
check "${S}x$S (stem output 1.25 x MemAvailable): refused in $ms ms with exit 1, not killed" \
    sh -c '[ "$1" = 1 ] && [ "$2" -lt 10000 ] && grep -q "needs .* GB more memory" "$3"' _ "$code" "$ms" "$T/mem2.err"
cat "$T/mem.err" "$T/mem2.err"
row "batch/size beyond the memory (RLIMIT_AS 1 GB; 1.25 x MemAvailable)" "2" "refused before training with the plan's figures, exit 1" "none"

# 7. valgrind memcheck: a fresh run with checkpoints, then a resume through validation, the epoch-end save and the curves
if command -v valgrind > /dev/null; then
    "$PY" tests/make_data.py fmnist-subset "$T/fm64" 64 16 || bad "valgrind: cannot build the data set"
    VG="valgrind -q --error-exitcode=99 --leak-check=full --show-leak-kinds=definite,indirect
        --errors-for-leak-kinds=definite,indirect --suppressions=$(pwd)/tests/valgrind.supp"
    $VG "$B" train --data "idx:$T/fm64" --blocks 1,1 --widths 8,16 --bs 16 --epochs 1 --steps 2 --threads 2 \
        --save-every 1 --out "$T/vg" > /dev/null 2> "$T/vg1.err"
    check "valgrind: a run of 2 steps with checkpoints is clean" test $? = 0
    $VG "$B" train --resume "$T/vg" > /dev/null 2> "$T/vg2.err"
    check "valgrind: its resume to the end of the epoch is clean" test $? = 0
    grep -q "==" "$T/vg1.err" "$T/vg2.err" && cat "$T/vg1.err" "$T/vg2.err" | head -60
    row "valgrind memcheck (training, checkpoints, resume, validation, curves)" "2 runs" "no error, no definite or indirect leak" "none"
else
    echo "skip: valgrind is not installed"
fi

echo "faults:"
printf "%s" "$table"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
