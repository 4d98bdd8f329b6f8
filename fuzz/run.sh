#!/usr/bin/env bash
# `make fuzz`: runs each fuzz target (built by the Makefile with coverage instrumentation)
# for FUZZ_SECONDS, from the checked-in corpus fuzz/corpus/<target> plus what earlier runs
# found (target/fuzz/corpus/<target>, where new inputs go), and prints execs, coverage and
# corpus size. A failing input is saved under target/fuzz/artifacts/<target>/.
# `fuzz/run.sh merge` (`make fuzz-corpus`) instead replaces the checked-in corpus with the
# smallest set of inputs that keeps every feature of both.
set -uo pipefail
cd "$(dirname "$0")/.."
bin=target/fuzz/${FUZZ_HOST:?}/release
seconds=${FUZZ_SECONDS:-60}
status=0
for t in ${FUZZ_TARGETS:-policy_json header_map request}; do
    mkdir -p "target/fuzz/corpus/$t" "target/fuzz/artifacts/$t" "fuzz/corpus/$t"
    dict=()
    [ -f "fuzz/dict/$t.dict" ] && dict=("-dict=fuzz/dict/$t.dict")
    log="target/fuzz/$t.log"
    if [ "${1:-}" = merge ]; then
        # The smallest set of inputs with every feature of both corpora replaces the
        # checked-in one.
        merged="target/fuzz/merged/$t"
        rm -rf "$merged" && mkdir -p "$merged"
        if "$bin/$t" -set_cover_merge=1 "$merged" "fuzz/corpus/$t" "target/fuzz/corpus/$t" >"$log" 2>&1; then
            rm -rf "fuzz/corpus/$t" && mv "$merged" "fuzz/corpus/$t"
        else
            status=1
        fi
        echo "$t: checked-in corpus $(ls "fuzz/corpus/$t" | wc -l) inputs; $(tail -1 "$log")"
        continue
    fi
    if ! "$bin/$t" -max_total_time="$seconds" -print_final_stats=1 -timeout=10 \
        -artifact_prefix="target/fuzz/artifacts/$t/" "${dict[@]}" \
        "target/fuzz/corpus/$t" "fuzz/corpus/$t" >"$log" 2>&1; then
        echo "$t: FAILURE (input saved under target/fuzz/artifacts/$t/); end of $log:"
        tail -40 "$log"
        status=1
        continue
    fi
    # libFuzzer's last line: "#<execs> DONE cov: <edges> ft: <features> corp: <n>/<size> ... exec/s: <rate>"
    grep -a 'DONE  *cov:' "$log" | tail -1 | awk -v t="$t" -v s="$seconds" '{
        execs = substr($1, 2)
        for (i = 1; i < NF; i++) {
            if ($i == "cov:") cov = $(i + 1)
            if ($i == "ft:") ft = $(i + 1)
            if ($i == "corp:") corp = $(i + 1)
            if ($i == "exec/s:") rate = $(i + 1)
        }
        split(corp, c, "/")
        printf "%s: %s execs in %s s (%s/s), coverage %s edges / %s features, corpus %s inputs (%s), 0 failures\n", t, execs, s, rate, cov, ft, c[1], c[2]
    }'
done
exit $status
