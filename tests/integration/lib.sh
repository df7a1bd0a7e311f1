#!/usr/bin/env bash
# (sourced, not run)
# lib.sh: sourced by every tests/integration/*.test.sh.
#
# Containers (see tests/container/hermes-emu):
#   emu_boot [hermes-emu boot options]   boot a new container in a fresh
#                                        STATEDIR under $EMU_TMP; sets $EMU to
#                                        it (save it to juggle several:
#                                        c1=$EMU; ...; EMU=$c1 emu_root ...).
#                                        Never call it in $(...): teardown is
#                                        registered in the calling shell.
#   emu_root CMD [ARG...]                run CMD as root in container $EMU
#   emu_user CMD [ARG...]                run CMD as hermes in container $EMU
#   emu_path                             print the host path of $EMU's root
#   emu_down [STATEDIR]                  stop a container (default $EMU)
#   emu_standin_overlay                  print an overlay dir that installs
#                                        the stand-in as /usr/bin/hermes
#   emu_stage2                           s6-overlay's stage 2, now, as root
#   emu_wait_stage2 TIMEOUT_MS           wait for a -2 container's stage 2
#   emu_stop [SECONDS], emu_restart [SECONDS]  docker stop / docker restart
# Assertions (on failure: message on stderr, the test exits 1):
#   assert_rc EXPECTED CMD [ARG...]      CMD's exit code is EXPECTED; its
#                                        stdout+stderr are left in $ASSERT_OUT
#   assert_eq EXPECTED ACTUAL MSG
#   assert_contains HAYSTACK NEEDLE MSG
#   assert_not_contains HAYSTACK NEEDLE MSG
#   wait_until TIMEOUT_MS CMD [ARG...]   poll CMD every 20 ms until it
#                                        succeeds; fail after TIMEOUT_MS
#   fail MSG
#   now_ms                               set NOW_MS to the wall clock in ms
# Variables: HERMES_S6_ROOT (repo root), HERMES_S6_DESTDIR (installed overlay,
# pass it with -o), HERMES_EMU (the hermes-emu script), HERMES_STANDIN (the
# stand-in script), EMU_TMP (this test's scratch dir: $HERMES_TEST_TMP from
# the runner, else a mktemp dir removed at exit).
# Tests run under set -euo pipefail: a failing command ends the test and its
# line is reported. Every container booted is torn down at exit, on failure
# and on SIGTERM/SIGINT/SIGHUP too; the runner catches the rest (SIGKILL).

set -euo pipefail
export LC_ALL=C

HERMES_S6_ROOT=${HERMES_S6_ROOT:-$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd)}
HERMES_S6_DESTDIR=${HERMES_S6_DESTDIR:-$HERMES_S6_ROOT/target/overlay}
HERMES_EMU=$HERMES_S6_ROOT/tests/container/hermes-emu
HERMES_STANDIN=$HERMES_S6_ROOT/tests/container/standin-hermes
export HERMES_S6_ROOT HERMES_S6_DESTDIR

if [[ -n ${HERMES_TEST_TMP:-} ]]; then
    EMU_TMP=$HERMES_TEST_TMP
    mkdir -p -- "$EMU_TMP"
    _EMU_TMP_OWNED=0
else
    EMU_TMP=$(mktemp -d "${TMPDIR:-/tmp}/hermes-it.XXXXXX")
    _EMU_TMP_OWNED=1
fi
EMU=''
ASSERT_OUT=''
_EMU_ALL=()
_EMU_N=0

_EMU_REPORTED=0
_EMU_ERR_LINE=''
_EMU_LAST=''
_emu_teardown() {
    local rc=$? cmd=$BASH_COMMAND d n=${#FUNCNAME[@]} line chain=''
    trap - EXIT INT TERM HUP ERR
    # set -e ended the test without an assertion failing: say where. A
    # failure inside a function is shown at the test's top-level call.
    if ((rc != 0 && !_EMU_REPORTED)); then
        if ((n > 2)); then
            line=${BASH_LINENO[n - 2]}
            [[ ${FUNCNAME[1]} != emu_root && ${FUNCNAME[1]} != emu_user ]] || cmd=$_EMU_LAST
            [[ ${FUNCNAME[n - 2]} == "${FUNCNAME[1]}" ]] || chain=" (in ${FUNCNAME[n - 2]})"
        else
            line=${_EMU_ERR_LINE:-?}
        fi
        printf 'FAIL (%s:%s): exited %s at: %s%s\n' "${BASH_SOURCE[n - 1]##*/}" "$line" "$rc" "$cmd" "$chain" >&2
    fi
    for d in "${_EMU_ALL[@]}"; do
        "$HERMES_EMU" down "$d" || rc=1
    done
    if ((_EMU_TMP_OWNED)); then
        rm -rf -- "$EMU_TMP"
    fi
    exit "$rc"
}
trap _emu_teardown EXIT
trap '_EMU_ERR_LINE=$LINENO' ERR
trap '_EMU_REPORTED=1; echo "FAIL: killed by SIGHUP" >&2; exit 129' HUP
trap '_EMU_REPORTED=1; echo "FAIL: killed by SIGINT" >&2; exit 130' INT
trap '_EMU_REPORTED=1; echo "FAIL: killed by SIGTERM (timeout?)" >&2; exit 143' TERM

# fail MSG: report MSG with the test file's line, end the test. (Inside
# $(...) it only ends that subshell: call assertions at the test's level.)
fail() {
    local i where='?'
    for ((i = 1; i < ${#BASH_SOURCE[@]}; i++)); do
        if [[ ${BASH_SOURCE[i]} != "${BASH_SOURCE[0]}" ]]; then
            where="${BASH_SOURCE[i]##*/}:${BASH_LINENO[i - 1]}"
            break
        fi
    done
    printf 'FAIL (%s): %s\n' "$where" "$*" >&2
    _EMU_REPORTED=1
    exit 1
}

emu_boot() {
    _EMU_N=$((_EMU_N + 1))
    local d=$EMU_TMP/emu.$_EMU_N
    _EMU_ALL+=("$d")
    "$HERMES_EMU" boot "$d" "$@" || fail "emu_boot $*: hermes-emu boot failed"
    EMU=$d
}

emu_root() { _EMU_LAST="emu_root $*"; "$HERMES_EMU" root "$EMU" "$@"; }
emu_user() { _EMU_LAST="emu_user $*"; "$HERMES_EMU" user "$EMU" "$@"; }
emu_path() { "$HERMES_EMU" path "$EMU"; }
emu_down() { "$HERMES_EMU" down "${1:-$EMU}"; }

emu_standin_overlay() {
    local d=$EMU_TMP/standin-overlay
    if [[ ! -x $d/usr/bin/hermes ]]; then
        install -D -m 0755 -- "$HERMES_STANDIN" "$d/usr/bin/hermes"
    fi
    printf '%s\n' "$d"
}

# s6-overlay's stage 2 (tests/container/s6-overlay/rc.init: cont-init.d,
# then the user bundle from the membership directory that s6-overlay
# version reads, each longrun awaited until up or ready, and the one rescan
# of /run/service only when the whole bundle came up), run now as root in
# container $EMU; its exit code is 0 even when a service failed (see
# /run/s6/.emu-stage2). A container booted with -2 runs it itself: wait
# for it with emu_wait_stage2.
emu_stage2() {
    emu_root /run/s6/basedir/scripts/rc.init top
}

# emu_wait_stage2 TIMEOUT_MS: wait until the stage 2 of a container booted
# with -2 has given its verdict; prints it (ok or failed).
emu_wait_stage2() {
    wait_until "$1" "$HERMES_EMU" root "$EMU" test -s /run/s6/.emu-stage2
    emu_root cat /run/s6/.emu-stage2
}

# emu_stop [SECONDS]: docker stop (SIGTERM to PID 1, SIGKILL after SECONDS,
# default 10); emu_restart [SECONDS]: docker restart (same options, same
# volume). Both keep STATEDIR/svscan.log.
emu_stop() { "$HERMES_EMU" stop "$EMU" "$@"; }
emu_restart() { "$HERMES_EMU" restart "$EMU" "$@" || fail "emu_restart: hermes-emu restart failed"; }

_indent() { sed 's/^/    | /'; }

assert_rc() {
    local want=$1 rc=0
    shift
    ASSERT_OUT=$("$@" 2>&1) || rc=$?
    if [[ $rc != "$want" ]]; then
        fail "$(printf 'expected exit %s, got %s from: %s\n%s' "$want" "$rc" "$*" "$(_indent <<<"$ASSERT_OUT")")"
    fi
}

assert_eq() {
    [[ $1 == "$2" ]] ||
        fail "$(printf '%s\n    expected: %q\n    actual:   %q' "${3:-assert_eq}" "$1" "$2")"
}

assert_contains() {
    [[ $1 == *"$2"* ]] ||
        fail "$(printf '%s\n    expected to contain: %q\n    in:\n%s' "${3:-assert_contains}" "$2" "$(_indent <<<"$1")")"
}

assert_not_contains() {
    [[ $1 != *"$2"* ]] ||
        fail "$(printf '%s\n    expected NOT to contain: %q\n    in:\n%s' "${3:-assert_not_contains}" "$2" "$(_indent <<<"$1")")"
}

now_ms() { local t=${EPOCHREALTIME/[.,]/}; NOW_MS=$((10#$t / 1000)); }

wait_until() {
    local timeout=$1 deadline out=''
    shift
    now_ms
    deadline=$((NOW_MS + timeout))
    while :; do
        if out=$("$@" 2>&1); then
            return 0
        fi
        now_ms
        if ((NOW_MS >= deadline)); then
            fail "$(printf 'wait_until: not true after %s ms: %s\n    last output:\n%s' "$timeout" "$*" "$(_indent <<<"$out")")"
        fi
        sleep 0.02
    done
}
