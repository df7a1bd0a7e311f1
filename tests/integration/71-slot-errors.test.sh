#!/bin/bash
# hermes-slot's errors in the booted image, both topologies: register
# twice (exit 1); invalid names (exit 100, the table reconcile uses);
# start/stop/restart/park/unpark of an unregistered profile (upstream's
# message, exit 2, nothing written); no s6-svscan listening (register
# withdraws the slot, exit 111); status of a slot without a supervisor
# (exit 102, no supervisor; s6-svstat says exit 1).
# shellcheck disable=SC2016 # single-quoted scripts run inside the container
# shellcheck source=tests/integration/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/slot.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/slot.sh"

# snapshot DIR: every entry below DIR with its inode and change time.
snapshot() { emu_root find "$1" -printf '%p %i %C@\n' | sort; }

long=$(printf 'a%.0s' $(seq 252))
for topology in isolated shared; do
    slot_boot "$topology"

    assert_rc 0 slot register -d coder
    assert_rc 1 slot register coder
    assert_eq "hermes-slot: fatal: gateway 'coder' is already registered: $SD/gateway-coder" "$ASSERT_OUT" "$topology: register twice"
    assert_rc 1 slot register -d default
    assert_contains "$ASSERT_OUT" "already registered" "$topology: reconcile's slot counts"

    for bad in '' Coder foo/bar ../escape -leading-dash _leading_underscore 'name with spaces' name.with.dots "$long" $'a\n'; do
        for cmd in register unregister start stop restart; do
            assert_rc 100 slot "$cmd" -- "$bad"
            assert_contains "$ASSERT_OUT" "hermes-slot: fatal: invalid profile name '" "$topology: $cmd ${bad:0:20}"
        done
    done

    before=$(snapshot "$SD")
    for cmd in start stop restart park unpark; do
        assert_rc 2 slot "$cmd" typo
        assert_eq "hermes-slot: fatal: no such gateway 'typo': register it with \`hermes profile create typo\` first, or pass an existing profile name via \`-p <name>\`" \
            "$ASSERT_OUT" "$topology: $cmd of an unregistered profile"
    done
    assert_eq "$before" "$(snapshot "$SD")" "$topology: nothing written for an unregistered profile"
    assert_rc 1 emu_root test -e /opt/data/profiles/typo

    # A scan directory nobody scans: its control FIFO has no reader.
    emu_user sh -ec 'mkdir -p /tmp/noscan/.s6-svscan; mkfifo /tmp/noscan/.s6-svscan/control'
    assert_rc 111 slot -s /tmp/noscan register writer
    assert_contains "$ASSERT_OUT" "unable to rescan /tmp/noscan: s6-svscan not listening (the slot was removed again)" "$topology: rollback"
    assert_eq ".s6-svscan" "$(emu_root ls -A /tmp/noscan)" "$topology: nothing left of the slot"
    # A slot there has no supervisor: status says so and exits 102.
    assert_rc 0 emu_user /usr/bin/hermes-reconcile -s /tmp/noscan
    assert_rc 102 slot -s /tmp/noscan status default
    assert_eq "hermes-slot: warning: unable to read status for gateway 'default': s6-supervise not running
default: not supervised" "$ASSERT_OUT" "$topology: an unsupervised slot"
    assert_rc 1 emu_user s6-svstat /tmp/noscan/gateway-default
    assert_rc 102 slot -s /tmp/noscan start default
    assert_contains "$ASSERT_OUT" "unable to control /tmp/noscan/gateway-default: supervisor not listening" "$topology: 102 as s6-svc"
    assert_rc 0 slot -s /tmp/noscan unregister default
    assert_eq ".s6-svscan" "$(emu_root ls -A /tmp/noscan)" "$topology: an unsupervised slot unregisters"

    if [[ $topology == isolated ]]; then
        # The user's scanner stops: every supervisor of its scan directory
        # goes with it.
        emu_root s6-svc -d /run/service/profile-gateways
        wait_until 5000 sh -c "! \"$HERMES_EMU\" user $EMU s6-svok $SD/gateway-coder"
        assert_rc 102 slot status coder
        assert_contains "$ASSERT_OUT" "coder: not supervised" "$topology: a slot whose supervisor is gone"
        assert_rc 1 emu_user s6-svstat "$SD/gateway-coder"
        assert_contains "$ASSERT_OUT" "s6-supervise not running" "s6-svstat agrees"
        assert_rc 111 slot register writer
        assert_contains "$ASSERT_OUT" "s6-svscan not listening (the slot was removed again)" "$topology: no scanner, no slot"
        assert_eq "" "$(emu_root sh -c "ls -A $SD | grep writer || true")" "$topology: rolled back"
        assert_rc 0 slot unregister coder
        assert_rc 1 emu_root test -e "$SD/gateway-coder"
    fi
    emu_down "$EMU"
done
