#!/bin/bash
# The cont-init stage 015-supervise-perms when hermes-svscan-perms refuses
# an object: the tool names it in one warning line, goes on, and the stage
# exits 100 (a refusal, doc/conventions.md#refused-is-100; 111 before).
# s6-overlay treats that exit as any non-zero one: with
# S6_BEHAVIOUR_IF_STAGE2_FAILS 0 the boot goes on without a word, 1 warns,
# 2 stops the container.
# The shared topology, so that only this stage fails (02-reconcile-profiles
# writes root's scan directory, which the stage still gives the user).
# shellcheck source=tests/integration/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

# stage2 BEHAVIOUR: boot, plant the refused object, run stage 2; its
# output in $OUT.
stage2() {
    emu_boot -n -o "$HERMES_S6_DESTDIR" -e HERMES_HOME=/opt/data -e HERMES_S6_TOPOLOGY=shared \
        -e S6_CMD_WAIT_FOR_SERVICES_MAXTIME=3000 -e "S6_BEHAVIOUR_IF_STAGE2_FAILS=$1"
    # The user's scan directory's parent is a symlink: refused, not followed.
    emu_root ln -s /nowhere /run/hermes
    OUT=$(emu_stage2 2>&1) || true
}

for behaviour in 0 1 2; do
    stage2 $behaviour
    assert_contains "$OUT" "hermes-svscan-perms: warning: unable to use /run/hermes: is a symlink, expected a directory" \
        "$behaviour: the refused object is named"
    assert_contains "$OUT" "/etc/cont-init.d/015-supervise-perms exited 100" "$behaviour: the stage exits 100"
    assert_contains "$OUT" "/etc/cont-init.d/02-reconcile-profiles exited 0" "$behaviour: the next stage still runs"
    case $behaviour in
        0)
            assert_not_contains "$OUT" "some scripts exited nonzero" "0: no word"
            assert_contains "$OUT" "service legacy-cont-init successfully started" "0: the boot goes on"
            ;;
        1)
            assert_contains "$OUT" "cont-init: warning: some scripts exited nonzero" "1: warned"
            assert_contains "$OUT" "service legacy-cont-init successfully started" "1: the boot goes on"
            ;;
        2)
            assert_contains "$OUT" "unable to start service legacy-cont-init: command exited 1" "2: legacy-cont-init fails"
            assert_contains "$OUT" "rc.init: fatal: stopping the container." "2: the container stops"
            ;;
    esac
    emu_down "$EMU"
done
