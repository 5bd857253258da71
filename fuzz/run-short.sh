#!/usr/bin/env bash
# Short fuzz run of every kiban parser target (issue 3, item 10): the CI smoke run.
#
# Usage: fuzz/run-short.sh [SECONDS_PER_TARGET] [TARGET...]
#   SECONDS_PER_TARGET defaults to 20 (env FUZZ_SECONDS also works); TARGET defaults to all.
#
# Needs cargo-fuzz. With a nightly toolchain it fuzzes with AddressSanitizer; on stable alone
# (as on CI) with `--sanitizer none`. Without cargo-fuzz it says so and exits 0.
# Targets run one at a time (the machine is shared). Seeds in fuzz/seeds/<target>/ are read
# only; new inputs go to fuzz/corpus/<target>/ (gitignored). A crash fails the script (exit 1)
# and leaves the input in fuzz/artifacts/<target>/; minimize it with
# `cargo +nightly fuzz tmin <target> <artifact>` and commit it under fuzz/regressions/<target>/.
set -u

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
secs="${1:-${FUZZ_SECONDS:-20}}"
shift $(( $# > 0 ? 1 : 0 ))

if ! [[ "$secs" =~ ^[0-9]+$ ]] || [ "$secs" -eq 0 ]; then
    echo "run-short.sh: seconds must be a positive integer, got '$secs'" >&2
    exit 2
fi
if ! command -v cargo >/dev/null 2>&1; then
    echo "run-short.sh: skipped: cargo is not installed"
    exit 0
fi
# With nightly: libFuzzer with AddressSanitizer. Without (CI's machines have one stable
# toolchain): cargo-fuzz's reduced `--sanitizer none` mode, which works on stable and still
# finds panics, hangs and out-of-memory (safe Rust needs no ASan to be memory safe).
if cargo +nightly --version >/dev/null 2>&1 && cargo +nightly fuzz --version >/dev/null 2>&1; then
    fz=(cargo +nightly fuzz)
    san=()
elif cargo fuzz --version >/dev/null 2>&1; then
    fz=(cargo fuzz)
    san=(--sanitizer none)
else
    echo "run-short.sh: skipped: cargo-fuzz is not installed (cargo install cargo-fuzz)"
    exit 0
fi

cd "$root" || exit 2
if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    # release_spec needs `--features release` (arrow + parquet under instrumentation: a long
    # build); name it explicitly to run it.
    mapfile -t targets < <("${fz[@]}" list | grep -vx release_spec)
fi

feat=()
if [[ " ${targets[*]} " == *" release_spec "* ]]; then
    feat=(--features release)
fi

# One build for all targets, so the per-target time budget is spent fuzzing.
if ! "${fz[@]}" build "${san[@]}" "${feat[@]}"; then
    echo "run-short.sh: the fuzz targets do not build" >&2
    exit 1
fi

failed=()
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t"
    seeds=()
    [ -d "fuzz/seeds/$t" ] && seeds+=("fuzz/seeds/$t")
    [ -d "fuzz/regressions/$t" ] && seeds+=("fuzz/regressions/$t")
    echo "== $t: ${secs}s"
    log="$(mktemp)"
    if "${fz[@]}" run "${san[@]}" "${feat[@]}" "$t" "fuzz/corpus/$t" "${seeds[@]}" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$log" 2>&1; then
        grep -E '^(#[0-9]+\s+DONE|stat::number_of_executed_units|stat::average_exec_per_sec)' "$log" || true
    else
        failed+=("$t")
        tail -n 60 "$log"
    fi
    rm -f "$log"
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "run-short.sh: crashes or errors in: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "run-short.sh: ${#targets[@]} targets, ${secs}s each, no crash (${fz[*]} ${san[*]})"
