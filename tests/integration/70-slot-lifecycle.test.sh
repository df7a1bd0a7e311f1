#!/bin/bash
# hermes-slot in the booted image, both topologies, as hermes with the
# stand-in gateway: register -> supervised -> start -> up as UID 10000 ->
# restart (new pid) -> stop (down, wanted down) -> unregister (no
# directory, no supervisor, not listed). At every state its status agrees
# with s6-svstat. The profile's gateway_state.json gets desired_state and
# an integer updated_at, every other key kept byte for byte; a stop leaves
# the planned-stop marker for the pid it stops; a missing profile home is
# not created.
# shellcheck disable=SC2016 # single-quoted scripts run inside the container
# shellcheck source=tests/integration/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/slot.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/slot.sh"

# The state file's other keys, with spacing and number forms a re-encoder
# would change: every byte but desired_state's and updated_at's is kept.
STATE='{"gateway_state": "stopped", "pid":  4242 , "platforms": {"tg": {"state": "ok", "n": [1, 2.50]}}, "updated_at": "2026-01-01T00:00:00Z", "x": 1e3}'
KEPT='"gateway_state": "stopped", "pid":  4242 , "platforms": {"tg": {"state": "ok", "n": [1, 2.50]}}, "updated_at": '

for topology in isolated shared; do
    slot_boot "$topology"
    # A profile home without SOUL.md: reconcile left it alone.
    emu_user sh -ec 'mkdir -p /opt/data/profiles/coder; printf "%s\n" "$1" >/opt/data/profiles/coder/gateway_state.json' sh "$STATE"
    assert_eq "default" "$(slot list)" "$topology: only reconcile's slot"

    # register: on return a supervisor holds the slot and its logger.
    assert_rc 0 slot register -d coder
    assert_eq "gateway-coder
gateway-coder/log" "$(slot_supervisors '^gateway-coder(/log)?$' | sort)" "$topology: supervised on return"
    assert_rc 0 emu_user s6-svok "$SD/gateway-coder"
    assert_eq "coder
default" "$(slot list)" "$topology: listed"
    assert_eq "hermes" "$(emu_root stat -c %U "$SD/gateway-coder/run")" "$topology: built as hermes"
    slot_agree coder "$topology: registered down"
    assert_eq "" "$(emu_root ls -A "$SD/gateway-coder/event")" "$topology: no subscriber FIFO left"

    # start: up, as hermes, with the stand-in's argv.
    assert_rc 0 slot start -w coder
    slot_up_as_hermes coder
    slot_agree coder "$topology: up"
    pid=$(slot_field coder pid)
    state=$(emu_root cat /opt/data/profiles/coder/gateway_state.json)
    assert_contains "$state" "{$KEPT" "$topology: every other key kept, byte for byte"
    [[ $state =~ \"updated_at\":\ ([0-9]+),\ \"x\":\ 1e3,\"desired_state\":\"running\"\}$ ]] ||
        fail "$topology: desired_state running and an integer updated_at: $state"

    # restart: a new pid, still up and wanted up.
    assert_rc 0 slot restart -w coder
    slot_up_as_hermes coder
    new=$(slot_field coder pid)
    [[ $new != "$pid" ]] || fail "$topology: restart kept pid $pid"
    slot_agree coder "$topology: restarted"

    # stop: down, wanted down; the marker names the stopped pid.
    assert_rc 0 slot stop -w coder
    assert_eq "false false" "$(emu_user s6-svstat -o up,wantedup "$SD/gateway-coder")" "$topology: down, wanted down"
    slot_agree coder "$topology: stopped"
    assert_contains "$(emu_root cat /opt/data/profiles/coder/.gateway-planned-stop.json)" "{\"target_pid\":$new,\"target_start_time\":" "$topology: planned-stop marker"
    state=$(emu_root cat /opt/data/profiles/coder/gateway_state.json)
    [[ $state == "{$KEPT"*', "x": 1e3,"desired_state":"stopped"}' ]] || fail "$topology: desired_state stopped: $state"
    assert_eq "hermes" "$(emu_root stat -c %U /opt/data/profiles/coder/gateway_state.json)" "$topology: the state file stays hermes's"

    # Up again, then unregister: down, out of the scan, supervisors gone, removed.
    assert_rc 0 slot start -w coder
    slot_up_as_hermes coder
    last=$(slot_field coder pid)
    assert_rc 0 slot unregister coder
    assert_eq "" "$(emu_root sh -c "ls -A $SD | grep coder || true")" "$topology: no directory, no aside copy"
    assert_eq "" "$(slot_supervisors 'coder')" "$topology: no supervisor left"
    assert_rc 1 emu_root test -e "/proc/$last"
    assert_eq "default" "$(slot list)" "$topology: no longer listed"
    assert_eq "" "$(emu_root find "$SD" -xtype l)" "$topology: no dangling entry"
    assert_rc 0 slot unregister coder
    # A profile without a home: its slot works, nothing is created for it.
    assert_rc 0 slot register -d homeless
    assert_rc 0 slot start -w homeless
    assert_rc 0 slot stop -w homeless
    assert_rc 1 emu_root test -e /opt/data/profiles/homeless
    assert_rc 0 slot unregister homeless
    # The rest of the scan directory is as it was.
    slot_agree default "$topology: gateway-default untouched"
    emu_down "$EMU"
done
