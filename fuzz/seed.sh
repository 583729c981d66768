#!/bin/sh
# Fills fuzz/corpus/<target>/ (scratch, not committed) from examples/, tests/data/ and
# the committed seeds of fuzz/seeds/. Run from anywhere; safe to run again.
set -eu
fuzz=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$fuzz")
data="$root/tests/data/cli"
for target in policy_toml events_json request_json audit_verify guard_structured; do
    mkdir -p "$fuzz/corpus/$target"
    if [ -d "$fuzz/seeds/$target" ]; then
        cp "$fuzz/seeds/$target"/* "$fuzz/corpus/$target/" 2>/dev/null || true
    fi
done
cp "$root"/examples/policies/*.toml "$data"/*.toml "$fuzz/corpus/policy_toml/"
cp "$data"/*events*.jsonl "$fuzz/corpus/events_json/"
cp "$data"/*request*.json* "$fuzz/corpus/request_json/"
# One record per file too: libFuzzer mutates short inputs best.
for file in "$data"/*events*.jsonl "$data"/*requests*.jsonl; do
    case "$file" in *events*) target=events_json ;; *) target=request_json ;; esac
    n=0
    while IFS= read -r line; do
        n=$((n + 1))
        printf '%s\n' "$line" > "$fuzz/corpus/$target/$(basename "$file" .jsonl)-$n.json"
    done < "$file"
done
for target in policy_toml events_json request_json audit_verify guard_structured; do
    echo "$target: $(ls "$fuzz/corpus/$target" | wc -l) seeds"
done
