#!/bin/bash
# hermes-slot as the Python CLI's backend, in the booted image: park keeps
# a gateway down across a supervisor restart (s6-svc -x, then a rescan),
# both topologies, and across a reboot of the container (same volume, new
# /run), under both boot rules (a parked root is not started by the
# multiplex rule's fold); unpark undoes it; register -e without SOUL.md
# creates nothing (exit 2); restart of a down gateway starts it; -j
# prints one JSON object, result or error; scandir names the scan
# directory every command uses.
# shellcheck disable=SC2016 # single-quoted scripts run inside the container
# shellcheck source=tests/integration/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/slot.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/slot.sh"

vol=$EMU_TMP/volume
install -d -m 0755 "$vol"
# boot TOPOLOGY [-e VAR=VALUE...]: the image on the volume, stage 2 run.
boot() {
    local topology=$1
    shift
    emu_boot -o "$HERMES_S6_DESTDIR" -o "$(emu_standin_overlay)" -v "$vol" -e HERMES_HOME=/opt/data -e "HERMES_S6_TOPOLOGY=$topology" "$@"
    emu_root install -d -m 1777 /run/standin
    BOOT_OUT=$(emu_stage2 2>&1)
    assert_contains "$BOOT_OUT" "/etc/cont-init.d/02-reconcile-profiles exited 0" "$topology: the image booted"
    SD=/run/service
    if [[ $topology == isolated ]]; then
        SD=/run/hermes/service
        wait_until 5000 emu_user test -p $SD/.s6-svscan/control
    fi
    wait_until 5000 emu_user s6-svok "$SD/gateway-default"
}
desired() { emu_root python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["desired_state"])' "$1"; }
normally() { emu_user s6-svstat -o up,wantedup,normallyup "$SD/gateway-$1"; }
# supervised_again P: a supervisor holds P's slot and has written its status.
supervised_again() { emu_user s6-svok "$SD/gateway-$1" && emu_user test -s "$SD/gateway-$1/supervise/status"; }
# supervisor_of P: the pid of the s6-supervise of P's slot (it works in the
# slot's directory; its logger's in log/), or nothing.
supervisor_of() {
    emu_root sh -c 'for p in /proc/[0-9]*; do [ "$(cat "$p/comm" 2>/dev/null)" = s6-supervise ] && [ "$(readlink "$p/cwd")" = "$1" ] && echo "${p#/proc/}"; done; true' sh "$SD/gateway-$1"
}
# supervisor_changed P PID: P's supervisor is not PID any more (none, or a new one).
supervisor_changed() { [[ "$(supervisor_of "$1")" != "$2" ]]; }

for topology in isolated shared; do
    rm -rf "${vol:?}"/*
    boot "$topology"
    emu_user sh -ec 'mkdir -p /opt/data/profiles/coder'

    # scandir: the directory every command uses.
    assert_eq "$SD" "$(slot scandir)" "$topology: scandir"
    assert_eq "{\"scandir\":\"$SD\"}" "$(slot -j scandir)" "$topology: scandir -j"

    # register -e: no SOUL.md, nothing created, exit 2.
    before=$(emu_root sh -c "ls -A $SD; find /opt/data -printf '%p %i %C@\n' | sort" | sha256sum)
    assert_rc 2 slot register -e coder
    assert_eq "hermes-slot: fatal: profile 'coder' has no SOUL.md: not registered" "$ASSERT_OUT" "$topology: register -e"
    assert_eq "$before" "$(emu_root sh -c "ls -A $SD; find /opt/data -printf '%p %i %C@\n' | sort" | sha256sum)" "$topology: nothing created"
    assert_eq '{"error":"profile '"'"'coder'"'"' has no SOUL.md: not registered","code":2}' "$(slot -j register -e coder 2>/dev/null || true)" "$topology: -j error"
    emu_user sh -ec 'echo soul >/opt/data/profiles/coder/SOUL.md'
    assert_rc 100 slot register -r coder
    assert_contains "$ASSERT_OUT" "hermes-slot: usage: " "$topology: -r is no register option"
    assert_rc 0 slot register -e -d coder

    # restart of a down gateway starts it and records running.
    assert_rc 0 slot restart -w coder
    slot_up_as_hermes coder
    assert_eq running "$(desired /opt/data/profiles/coder/gateway_state.json)" "$topology: restart records running"

    # park: down, normally down, stopped, marked.
    assert_rc 0 slot park coder
    assert_eq "false false false" "$(normally coder)" "$topology: parked"
    assert_eq stopped "$(desired /opt/data/profiles/coder/gateway_state.json)" "$topology: park records stopped"
    assert_rc 0 emu_root test -f /opt/data/profiles/coder/gateway.parked
    # The supervisor exits and a rescan starts a new one: still down.
    supervisor=$(supervisor_of coder)
    assert_eq 1 "$(wc -w <<<"$supervisor")" "$topology: one supervisor ($supervisor)"
    assert_rc 0 emu_user s6-svc -x "$SD/gateway-coder"
    # s6-svscan 2.12+ starts a new supervisor by itself about 1 s later
    # (2.11's waits for a rescan): wait for the change, not for the gap.
    wait_until 5000 supervisor_changed coder "$supervisor"
    assert_rc 0 emu_user s6-svscanctl -a "$SD"
    wait_until 5000 supervised_again coder
    sleep 0.3 # a supervisor that starts its service does so at once
    assert_eq "false false false" "$(normally coder)" "$topology: parked across a supervisor restart"

    # unpark -w: up again, no down file, no marker, running.
    assert_rc 0 slot unpark -w coder
    assert_eq "true true true" "$(normally coder)" "$topology: unparked"
    assert_rc 1 emu_root test -e /opt/data/profiles/coder/gateway.parked
    assert_eq running "$(desired /opt/data/profiles/coder/gateway_state.json)" "$topology: unpark records running"

    # A reboot (per-profile rule): coder ran, was parked, stays down.
    assert_rc 0 slot park coder
    emu_down "$EMU"
    boot "$topology"
    assert_contains "$BOOT_OUT" "reconcile: profile=coder prior_state=stopped action=registered" "$topology: reboot"
    wait_until 5000 supervised_again coder
    assert_eq "false false false" "$(normally coder)" "$topology: parked across a reboot"
    emu_down "$EMU"
done

# A reboot under the multiplex rule: coder asks to run, so the root would
# start for it; a parked root does not.
rm -rf "${vol:?}"/*
boot isolated -e HERMES_S6_BOOT_POLICY=multiplex
emu_user sh -ec 'mkdir -p /opt/data/profiles/coder; echo soul >/opt/data/profiles/coder/SOUL.md; echo "{\"desired_state\": \"running\"}" >/opt/data/profiles/coder/gateway_state.json'
emu_down "$EMU"
boot isolated -e HERMES_S6_BOOT_POLICY=multiplex
assert_contains "$BOOT_OUT" "reconcile: profile=default prior_state=None action=started" "multiplex: the root starts for coder"
wait_until 8000 sh -c "[ \"\$(\"$HERMES_EMU\" user $EMU s6-svstat -o up $SD/gateway-default)\" = true ]"
assert_rc 0 slot park default
assert_eq "false false false" "$(normally default)" "multiplex: root parked"
emu_down "$EMU"
boot isolated -e HERMES_S6_BOOT_POLICY=multiplex
assert_contains "$BOOT_OUT" "reconcile: profile=default prior_state=stopped action=registered" "multiplex: a parked root is not folded into"
assert_contains "$BOOT_OUT" "the root profile is parked: gateway-default stays down" "multiplex: warned"
assert_contains "$BOOT_OUT" "reconcile: profile=coder prior_state=running action=registered" "multiplex: coder still folded"
wait_until 5000 supervised_again default
assert_eq "false false false" "$(normally default)" "multiplex: parked root across a reboot"
assert_rc 0 slot unpark -w default
assert_eq "true true true" "$(normally default)" "multiplex: unparked root"
