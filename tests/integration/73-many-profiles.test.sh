#!/bin/bash
# 600 profiles (two of three recorded running) booted through the image's
# stages, isolated topology: hermes-reconcile publishes 601 slots, the
# user's s6-svscan (profile-gateways) supervises all 1,202 services and
# loggers, and every profile recorded running is up. s6-svscan 2.12+
# counts loggers against its bound, 1000 by default: without the run
# script's -C, every scan stops at the 501st slot.
# shellcheck disable=SC2016 # single-quoted scripts run inside the container
# shellcheck source=tests/integration/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

N=600
emu_boot -o "$HERMES_S6_DESTDIR" -o "$(emu_standin_overlay)" -e HERMES_HOME=/opt/data -e HERMES_S6_TOPOLOGY=isolated
emu_root install -d -m 1777 /run/standin
emu_user sh -ec '
    cd /opt/data
    i=0
    while [ $i -lt "$1" ]; do
        d=profiles/p$i
        mkdir -p "$d"
        echo "a soul" >"$d/SOUL.md"
        s=running
        [ $((i % 3)) = 2 ] && s=stopped
        printf "{\"gateway_state\": \"%s\"}\n" "$s" >"$d/gateway_state.json"
        i=$((i + 1))
    done' sh "$N"

out=$(emu_stage2 2>&1)
assert_contains "$out" "/etc/cont-init.d/02-reconcile-profiles exited 0" "the image booted"
S=/run/hermes/service
assert_eq $((N + 1)) "$(emu_root sh -c "ls $S | grep -c '^gateway-'")" "one slot per profile and the default"

# every_running_up: each profile recorded running is up (stops at the
# first that is not, and names it).
every_running_up() {
    emu_root sh -c '
        i=0
        while [ $i -lt "$1" ]; do
            if [ $((i % 3)) != 2 ]; then
                [ "$(s6-svstat -o up "$2/gateway-p$i" 2>&1)" = true ] || { echo "p$i is not up"; exit 1; }
            fi
            i=$((i + 1))
        done' sh "$N" "$S"
}
wait_until 240000 every_running_up
assert_eq $((2 * (N + 1))) "$(emu_root sh -c "pgrep -x s6-supervise -a | grep -c ' gateway-'")" "every slot and logger supervised"
for i in 2 299 599; do
    assert_eq "false" "$(emu_root s6-svstat -o up "$S/gateway-p$i")" "p$i (stopped) is down"
done
