#!/bin/bash
# The image's boot, emulated as s6-overlay runs it: static longruns held
# down, then /etc/cont-init.d/* with only PATH and RC_NAME, then the user
# bundle. HERMES_HOME and the topology exist only in the container
# environment, so a stage that did not load it would miss them.
# shellcheck disable=SC2016 # inner sh -c scripts expand their own variables
# shellcheck source=tests/integration/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

make_volume() {
    local v=$1
    mkdir -p "$v/home/profiles/coder" "$v/home/profiles/writer"
    printf '{"desired_state":"running"}\n' >"$v/home/gateway_state.json"
    touch "$v/home/profiles/coder/SOUL.md" "$v/home/profiles/writer/SOUL.md"
    printf '{"gateway_state":"running"}\n' >"$v/home/profiles/coder/gateway_state.json"
    printf '{"desired_state":"stopped"}\n' >"$v/home/profiles/writer/gateway_state.json"
    chown -R 10000:10000 "$v"
}

# up_as_hermes DIR: up, and its process runs as uid 10000.
up_as_hermes() {
    local out
    out=$(emu_root sh -c 'set -- $(s6-svstat -o up,pid "$1"); [ "$1" = true ] && stat -c %u /proc/$2' sh "$1") &&
        [[ $out == 10000 ]]
}

for topology in isolated shared; do
    vol=$EMU_TMP/vol-$topology
    make_volume "$vol"
    emu_boot -o "$HERMES_S6_DESTDIR" -o "$(emu_standin_overlay)" -v "$vol" \
        -e HERMES_HOME=/opt/data/home -e "HERMES_S6_TOPOLOGY=$topology"
    emu_root install -d -m 1777 /run/standin
    out=$(emu_stage2 2>&1)
    assert_contains "$out" "/etc/cont-init.d/015-supervise-perms exited 0" "$topology: perms stage"
    assert_contains "$out" "/etc/cont-init.d/02-reconcile-profiles exited 0" "$topology: reconcile stage"
    assert_contains "$out" "reconcile: profile=coder prior_state=running action=started" "$topology: HERMES_HOME from the container env"

    if [[ $topology == isolated ]]; then
        sd=/run/hermes/service
        assert_eq "root 700" "$(emu_root stat -c '%U %a' /run/service/.s6-svscan)" "isolated: root's scanner stays root-only"
        assert_rc 1 emu_user mkdir /run/service/evil
        assert_contains "$ASSERT_OUT" "Permission denied" "isolated: hermes cannot add a service to root's scan directory"
        assert_rc 111 emu_user s6-svscanctl -a /run/service
        wait_until 5000 up_as_hermes /run/service/profile-gateways
    else
        sd=/run/service
        assert_eq "hermes" "$(emu_root stat -c '%U' /run/service)" "shared: the topology came from the container env"
        assert_eq "true true" "$(emu_root s6-svstat -o up,ready /run/service/profile-gateways)" "shared: profile-gateways up and ready (it only waits), so legacy-services rescanned"
    fi
    # Reconcile ran as hermes: what it wrote is hermes's.
    assert_eq "hermes" "$(emu_root stat -c '%U' "$sd/gateway-coder/run")" "$topology: slots built as hermes"
    assert_eq "hermes" "$(emu_root stat -c '%U' /opt/data/home/logs/container-boot.log)" "$topology: boot log written as hermes"
    wait_until 5000 up_as_hermes "$sd/gateway-default"
    wait_until 5000 up_as_hermes "$sd/gateway-coder"
    assert_eq "false false" "$(emu_user s6-svstat -o up,normallyup "$sd/gateway-writer")" "$topology: a stopped profile stays down"
    # hermes controls every slot and the static services.
    assert_rc 0 emu_user s6-svc -uwu -T 5000 "$sd/gateway-writer"
    assert_rc 0 emu_user s6-svc -dwd -T 5000 "$sd/gateway-writer"
    assert_rc 0 emu_user s6-svstat /run/service/dashboard
    # The dashboard is off: parked, never restarted.
    assert_eq "false false" "$(emu_user s6-svstat -o up,wantedup /run/service/dashboard)" "$topology: dashboard parked"
    emu_down "$EMU"
done
