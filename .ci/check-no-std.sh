#!/usr/bin/env bash
# The mm core must stay no_std + alloc: every crate it links (proc macros run
# on the host and are exempt) must be one known to build without std, with
# its `std` and `default` features off.
set -euo pipefail
cd "$(dirname "$0")/.."

# Crates known to work without std when their default features are off.
allowed='^(vmlab-mm|spin|serde|serde_core|lock_api|scopeguard|loom)$'

status=0
while read -r name _version rest; do
    [ -n "$name" ] || continue
    features=$(sed -n 's/.*\[\(.*\)\]$/\1/p' <<<"$rest")
    if ! [[ $name =~ $allowed ]]; then
        echo "check-no-std: vmlab-mm depends on '$name', which is not on the no_std allowlist in .ci/check-no-std.sh" >&2
        status=1
    fi
    if [[ ",$features," == *",std,"* || ",$features," == *",default,"* ]]; then
        echo "check-no-std: '$name' is built with features [$features]; vmlab-mm needs default features off and no 'std'" >&2
        status=1
    fi
done < <(cargo tree -p vmlab-mm -e normal,no-proc-macro -f '{p} [{f}]' --prefix none | sort -u)

# No `std` in the crate's own source, outside tests.
if grep -rnE '^\s*(use|extern crate) std\b|[^_a-z]std::' crates/vmlab-mm/src | grep -v '^\S*:\s*//' ; then
    echo "check-no-std: crates/vmlab-mm/src names std" >&2
    status=1
fi
grep -q '^#!\[no_std\]' crates/vmlab-mm/src/lib.rs || { echo "check-no-std: lib.rs lacks #![no_std]" >&2; status=1; }

[ $status -eq 0 ] && echo "check-no-std: vmlab-mm links only no_std crates with default features off"
exit $status
