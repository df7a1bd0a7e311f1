#!/usr/bin/env bash
# (sourced, not run)
# shellcheck disable=SC2016 # single-quoted scripts run inside the container
# slot.sh: helpers for the 7x-slot-*.test.sh tests, sourced after lib.sh.
# All act on container $EMU, booted through the image's stages.
#
#   slot_boot TOPOLOGY          boot the image (overlay + stand-in hermes)
#                               with HERMES_HOME=/opt/data and the given
#                               HERMES_S6_TOPOLOGY, run stage 2, and set SD
#                               to the topology's scan directory
#   slot CMD [ARG...]           hermes-slot as hermes, the container's way
#                               (no -s: the default scan directory rule)
#   slot_agree PROFILE WHAT     hermes-slot status (-j and human) agrees
#                               with every field of s6-svstat -o this s6
#                               has and with s6-svstat's line (retried if
#                               a second ticks between the reads)
#   slot_field PROFILE FIELD    one field of hermes-slot status -j
#   slot_supervisors PATTERN    the s6-supervise processes whose argument
#                               matches the extended regex PATTERN, as
#                               "ARG" lines (comm and argv, not pgrep -f)
#   slot_up_as_hermes PROFILE   the gateway is up and its process runs as
#                               uid 10000 (a stand-in call with its pid)

slot_boot() {
    emu_boot -o "$HERMES_S6_DESTDIR" -o "$(emu_standin_overlay)" -e HERMES_HOME=/opt/data -e "HERMES_S6_TOPOLOGY=$1"
    emu_root install -d -m 1777 /run/standin
    local out
    out=$(emu_stage2 2>&1)
    assert_contains "$out" "/etc/cont-init.d/02-reconcile-profiles exited 0" "$1: the image booted"
    if [[ $1 == isolated ]]; then
        SD=/run/hermes/service
        wait_until 5000 emu_user test -p $SD/.s6-svscan/control
    else
        SD=/run/service
    fi
    wait_until 5000 emu_user s6-svok "$SD/gateway-default"
}

slot() { emu_user /usr/bin/hermes-slot "$@"; }

slot_field() {
    slot status -j "$1" | python3 -c 'import json, sys
v = json.load(sys.stdin)["gateways"][0].get(sys.argv[1])
print("null" if v is None else str(v).lower() if isinstance(v, bool) else v)' "$2"
}

# slot_agree PROFILE WHAT: `hermes-slot status -j` carries every field of
# `s6-svstat -o` (those this s6 knows: 2.11 has no pgid) with its value,
# and `hermes-slot status` prints s6-svstat's line (in s6 2.15's words:
# on 2.11 ours has a pgid in the up line, theirs not). Retried: seconds
# may tick between the reads.
slot_agree() {
    local p=$1 what=$2 dir=$SD/gateway-$1 attempt j ours theirs line human
    local fields=up,wantedup,normallyup,ready,paused,pid,pgid,exitcode,signal,signum,updownsince,readysince,updownfor,readyfor
    emu_user s6-svstat -o pgid "$dir" >/dev/null 2>&1 || fields=${fields/,pgid/}
    for attempt in 1 2 3 4 5; do
        j=$(slot status -j "$p")
        theirs=$(emu_user s6-svstat -o "$fields" "$dir")
        line=$(slot status "$p")
        human=$(emu_user s6-svstat "$dir")
        ours=$(python3 -c 'import json, sys
o = json.loads(sys.argv[1])["gateways"][0]
def show(k):
    v = o[k]
    if v is None:
        return "NA" if k == "signal" else "-1"
    return str(v).lower() if isinstance(v, bool) else str(v)
print(" ".join(show(k) for k in sys.argv[2].split(",")))' "$j" "$fields")
        [[ $fields == *pgid* ]] || line=$(sed -E 's/^([^:]*: up \(pid [0-9]+) pgid [0-9]+\)/\1)/' <<<"$line")
        if [[ $ours == "$theirs" && $line == "$p: $human" ]]; then
            return 0
        fi
        ((attempt < 5)) || fail "$(printf '%s: status disagrees with s6-svstat\n    ours:   %s / %s\n    theirs: %s / %s' "$what" "$ours" "$line" "$theirs" "$human")"
    done
}

slot_supervisors() {
    emu_root sh -c 'for p in /proc/[0-9]*; do
        [ "$(cat "$p/comm" 2>/dev/null)" = s6-supervise ] || continue
        tr "\0" "\n" <"$p/cmdline" 2>/dev/null | sed -n 2p
    done' | grep -E -- "$1" || true
}

# _slot_pid_is_hermes PROFILE: up, and a stand-in call by uid 10000 has its pid.
_slot_pid_is_hermes() {
    local pid
    [[ $(slot_field "$1" up) == true ]] || return 1
    pid=$(slot_field "$1" pid)
    emu_root grep -qE "^pid=$pid uid=10000 gid=10000 .*argv=-p $1 gateway run --replace$" /run/standin/calls &&
        [[ $(emu_root stat -c %u "/proc/$pid") == 10000 ]]
}

slot_up_as_hermes() { wait_until 8000 _slot_pid_is_hermes "$1"; }
