#!/bin/bash
# The image booted as s6-overlay 3.2.3.x boots it (hermes-emu boot -2): the
# boot bugs the real thing showed (issue 12) stay fixed. Each case fails
# on the tools and wiring before that issue.
# shellcheck disable=SC2016 # inner sh -c scripts expand their own variables
# shellcheck source=tests/integration/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

make_volume() {
    local v=$1
    mkdir -p "$v/home/profiles/coder"
    printf '{"desired_state":"running"}\n' >"$v/home/gateway_state.json"
    touch "$v/home/profiles/coder/SOUL.md"
    printf '{"gateway_state":"running"}\n' >"$v/home/profiles/coder/gateway_state.json"
    chown -R 10000:10000 "$v"
}

# up_as UID DIR: up, and its process runs as UID.
up_as() {
    local out
    out=$(emu_root sh -c 'set -- $(s6-svstat -o up,pid "$1"); [ "$1" = true ] && stat -c %u /proc/$2' sh "$2") &&
        [[ $out == "$1" ]]
}

log() { cat "$EMU/svscan.log"; }

scandir_of() { if [[ $1 == shared ]]; then echo /run/service; else echo /run/hermes/service; fi; }

# boot_image TOPOLOGY [hermes-emu boot options]: the image, the stand-in
# hermes, a fresh volume; stops the container when stage 2 fails; the CMD
# stays up.
boot_image() {
    local topology=$1 vol
    shift
    vol=$EMU_TMP/vol.$((_EMU_N + 1))
    make_volume "$vol"
    emu_boot -2 -o "$HERMES_S6_DESTDIR" -o "$(emu_standin_overlay)" -v "$vol" \
        -e HERMES_HOME=/opt/data/home -e "HERMES_S6_TOPOLOGY=$topology" -e S6_BEHAVIOUR_IF_STAGE2_FAILS=2 \
        "$@" -- sh -c 'echo CMD-RAN; exec sleep 1000000'
}

# 1. the shared topology boots and supervises its slots
case_1() {
    for topology in isolated shared; do
        boot_image "$topology"
        assert_eq ok "$(emu_wait_stage2 10000)" "$topology: stage 2"
        wait_until 5000 grep -q CMD-RAN "$EMU/svscan.log"
        sd=$(scandir_of "$topology")
        wait_until 5000 up_as 10000 "$sd/gateway-default"
        wait_until 5000 up_as 10000 "$sd/gateway-coder"
        assert_eq "true true" "$(emu_root s6-svstat -o up,ready /run/service/profile-gateways)" "$topology: profile-gateways up and ready"
        emu_down "$EMU"
    done
}

# 2. the services start whichever bundle directory s6-overlay reads
case_2() {
    local old_base version n out topology sd
    old_base=$EMU_TMP/old-base
    mkdir -p "$old_base/etc/s6-overlay/s6-rc.d/user/contents.d"
    echo bundle >"$old_base/etc/s6-overlay/s6-rc.d/user/type"
    for version in 3.2.3.0 3.2.3.2; do
        boot_image isolated -O "$version" -o "$old_base"
        assert_eq ok "$(emu_wait_stage2 10000)" "$version on an old base: stage 2"
        out=$(log)
        assert_contains "$out" "service profile-gateways successfully started" "$version: profile-gateways started"
        assert_contains "$out" "service dashboard successfully started" "$version: dashboard started"
        wait_until 5000 up_as 10000 /run/hermes/service/gateway-coder
        emu_down "$EMU"
    done
}

# 3. a mistyped topology: one clear line, no restart loop, the CMD runs
case_3() {
    boot_image isolate -e S6_BEHAVIOUR_IF_STAGE2_FAILS=0
    assert_eq failed "$(emu_wait_stage2 10000)" "a bad topology fails stage 2"
    wait_until 5000 grep -q CMD-RAN "$EMU/svscan.log"
    out=$(log)
    assert_contains "$out" "HERMES_S6_TOPOLOGY=isolate is not a topology (isolated or shared)" "the one clear line"
    n=$(grep -c "HERMES_S6_TOPOLOGY=isolate" <<<"$out")
    assert_eq 1 "$n" "said once"
    assert_eq "false false" "$(emu_root s6-svstat -o up,wantedup /run/service/profile-gateways)" "profile-gateways parked, not restarting"
    emu_down "$EMU"
}

# 4. /run on the overlay root (plain docker run): hermes controls the dashboard
case_4() {
    boot_image isolated -r overlay
    assert_eq ok "$(emu_wait_stage2 10000)" "/run on an overlay: stage 2"
    assert_contains "$(log)" "/etc/cont-init.d/015-supervise-perms exited 0" "015 on an overlay /run"
    assert_rc 0 emu_user s6-svc -u /run/service/dashboard
    wait_until 5000 up_as 10000 /run/hermes/service/gateway-coder
    emu_down "$EMU"
}

# 5. a non-root container: what can be done is done, the rest said
case_5() {
    for topology in isolated shared; do
        boot_image "$topology" -u 10000
        assert_eq ok "$(emu_wait_stage2 10000)" "non-root $topology: stage 2"
        out=$(log)
        assert_contains "$out" "/etc/cont-init.d/015-supervise-perms exited 0" "non-root $topology: 015"
        assert_contains "$out" "/etc/cont-init.d/02-reconcile-profiles exited 0" "non-root $topology: 02"
        assert_contains "$out" "not root" "non-root $topology: the skip is said"
        sd=$(scandir_of "$topology")
        wait_until 5000 up_as 10000 "$sd/gateway-coder"
        emu_down "$EMU"
    done
}

# 6. a read-only root (docker run --read-only, S6_READ_ONLY_ROOT=1): the
# stages, reconcile and the services write only to /run and the volume
case_6() {
    for topology in isolated shared; do
        boot_image "$topology" -R -e HERMES_DASHBOARD=1
        assert_eq ok "$(emu_wait_stage2 10000)" "read-only root, $topology: stage 2"
        assert_rc 1 emu_root touch /etc/probe
        assert_contains "$ASSERT_OUT" "Read-only file system" "read-only root, $topology: the root is read-only"
        sd=$(scandir_of "$topology")
        wait_until 5000 up_as 10000 "$sd/gateway-coder"
        wait_until 5000 up_as 10000 /run/service/dashboard
        assert_not_contains "$(log)" "Read-only file system" "read-only root, $topology: nothing tried to write the image"
        emu_down "$EMU"
    done
}

# 7. the dashboard in a non-root container: it comes up, as that user
case_7() {
    boot_image isolated -u 10000 -e HERMES_DASHBOARD=1
    assert_eq ok "$(emu_wait_stage2 10000)" "non-root, dashboard: stage 2"
    wait_until 5000 up_as 10000 /run/service/dashboard
    assert_contains "$(log)" "service dashboard successfully started" "non-root: the dashboard started"
    emu_down "$EMU"
}

# REAL_BOOT_CASES="1 3" runs only those (to see one fail on older tools).
for c in ${REAL_BOOT_CASES:-1 2 3 4 5 6 7}; do
    "case_$c"
done
