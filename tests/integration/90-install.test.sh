#!/usr/bin/env bash
# The installed toolkit (`make install DESTDIR=…`, as in the image): every
# tool name is in /usr/bin and answers -h with its usage line; the files
# there, each counted once, weigh at most 1 MiB together, and a file that
# is one tool's alone at most 512 KiB. Checked on the overlay under test and on a fresh
# install over an older layout (six regular files), which becomes the same.
# shellcheck source=tests/integration/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

TOOLS=(hermes-seed-supervise hermes-svscan-perms hermes-reconcile hermes-slot dashboard-run dashboard-finish)
MIB=1048576

fresh=$HERMES_TEST_TMP/fresh
mkdir -p "$fresh/usr/bin"
for t in "${TOOLS[@]}"; do printf 'old binary\n' >"$fresh/usr/bin/$t"; done
chmod 0755 "$fresh/usr/bin/"*
assert_rc 0 make -C "$HERMES_S6_ROOT" --no-print-directory install DESTDIR="$fresh"

for root in "$HERMES_S6_DESTDIR" "$fresh"; do
    bin=$root/usr/bin
    # Sizes: the regular files, one per inode; a file that is one tool's
    # alone at most 512 KiB.
    total=0
    while read -r size; do
        total=$((total + size))
    done < <(find "$bin" -type f -printf '%i %s\n' | sort -u -k1,1n | cut -d' ' -f2)
    ((total <= MIB)) || fail "$bin: $total bytes installed, over 1 MiB"
    declare -A names=()
    for t in "${TOOLS[@]}"; do
        f=$(realpath -e -- "$bin/$t") || fail "$bin/$t: missing"
        names[$f]+="$t "
    done
    for f in "${!names[@]}"; do
        read -r -a ts <<<"${names[$f]}"
        ((${#ts[@]} > 1 || $(stat -c %s -- "$f") <= MIB / 2)) || fail "$f (${ts[*]}): over 512 KiB"
    done
    unset names
    echo "$bin: $total bytes in $(find "$bin" -type f | wc -l) file(s)"

    for t in "${TOOLS[@]}"; do
        assert_eq hermes-s6 "$(readlink -- "$bin/$t")" "$bin/$t is a relative symlink to hermes-s6"
        rc=0 out=$("$bin/$t" -h 2>&1) || rc=$?
        assert_eq 0 "$rc" "$t -h exits 0"
        assert_eq "usage: $t " "${out:0:$((${#t} + 8))}" "$t -h prints its usage line"
        assert_eq 1 "$(wc -l <<<"$out")" "$t -h prints one line"
    done
    assert_eq 755 "$(stat -c %a -- "$bin/hermes-s6")" "hermes-s6's mode"
    assert_rc 100 "$bin/hermes-s6"
    assert_contains "$ASSERT_OUT" "hermes-s6: fatal: missing tool name" "hermes-s6 alone"
    assert_contains "$ASSERT_OUT" "${TOOLS[*]}" "the usage lists every name"
    assert_rc 0 "$bin/hermes-s6" hermes-slot port coder
done
