#!/bin/bash
# hermes-reconcile across a container restart: the volume outlives the
# container, /run does not. The second container gets back exactly the
# slots and states the volume records, including a gateway started and
# one stopped by hand in the first container.
# shellcheck disable=SC2016 # single-quoted scripts run inside the container
# shellcheck source=tests/integration/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/reconcile.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/reconcile.sh"

vol=$EMU_TMP/volume
mkdir -m 0755 "$vol"
S=/run/hermes/service
boot() {
    emu_boot -o "$HERMES_S6_DESTDIR" -o "$(rec_overlay)" -o "$(emu_standin_overlay)" -v "$vol" -e HERMES_HOME=/opt/data
    emu_root install -d -m 1777 /run/standin
}
# What the permissions stage does before reconcile in the image.
user_scandir() { emu_root install -d -o hermes -g hermes -m 0755 $S; }

# ---- first container
boot
c1=$EMU
user_scandir
rec_profiles
assert_rc 0 emu_user /usr/bin/hermes-reconcile
rec_user_svscan
rec_gateway_up $S/gateway-default "gateway run --replace"
rec_gateway_up $S/gateway-coder "-p coder gateway run --replace"
rec_down_normally_down $S/gateway-writer

# By hand, as `hermes gateway start/stop -p …` does: control the slot, and
# persist the intent next to the gateway's own keys.
assert_rc 0 emu_user s6-svc -u $S/gateway-writer
rec_gateway_up $S/gateway-writer "-p writer gateway run --replace"
emu_user sh -ec 'printf "%s\n" "{\"gateway_state\": \"running\", \"pid\": 77, \"desired_state\": \"running\", \"updated_at\": 1700000000}" >/opt/data/profiles/writer/gateway_state.json'
assert_rc 0 emu_user s6-svc -dwD -T 5000 $S/gateway-coder
emu_user sh -ec 'printf "%s\n" "{\"gateway_state\": \"stopped\", \"desired_state\": \"stopped\", \"updated_at\": 1700000000}" >/opt/data/profiles/coder/gateway_state.json'
# What the gateways leave behind: pid files, and ledgers (coder stopped
# cleanly; writer dies with the container).
emu_user sh -ec '
    cd /opt/data/profiles
    mkdir -p coder/state writer/state
    printf "%s\n" "{\"phase\": \"exited\", \"pid\": 70, \"exit_code\": 0}" >coder/state/gateway.lifecycle.json
    printf "%s\n" "{\"phase\": \"running\", \"pid\": 77}" >writer/state/gateway.lifecycle.json
    echo 77 >writer/gateway.pid
    echo "{}" >writer/processes.json
    echo 1 >/opt/data/gateway.pid
'
states=$(cd "$vol" && sha256sum gateway_state.json profiles/*/gateway_state.json)
emu_down "$c1"

# ---- second container, same volume, fresh /run
boot
assert_eq "no" "$(emu_root sh -c '[ -e /run/hermes ] && echo yes || echo no')" "/run starts empty"
user_scandir
assert_rc 0 emu_user /usr/bin/hermes-reconcile
assert_eq "reconcile: profile=default prior_state=running action=started
reconcile: profile=broken prior_state=startup_failed action=registered
reconcile: profile=coder prior_state=stopped action=registered
reconcile: profile=crashy prior_state=starting action=registered
reconcile: profile=idle prior_state=None action=registered
reconcile: profile=writer prior_state=running action=started" "$ASSERT_OUT" "the second boot's report"
rec_user_svscan
rec_gateway_up $S/gateway-default "gateway run --replace"
rec_gateway_up $S/gateway-writer "-p writer gateway run --replace"
for p in broken coder crashy idle; do
    rec_down_normally_down $S/gateway-$p
done
assert_eq "gateway-broken gateway-coder gateway-crashy gateway-default gateway-idle gateway-writer" \
    "$(emu_root ls $S | tr '\n' ' ' | sed 's/ $//')" "exactly the volume's profiles"
assert_eq "$states" "$(cd "$vol" && sha256sum gateway_state.json profiles/*/gateway_state.json)" "no state file changed"
assert_eq "" "$(cd "$vol" && find . -name gateway.pid -o -name processes.json)" "stale runtime files removed"

log=$(emu_root cat /opt/data/logs/container-boot.log)
assert_eq 12 "$(grep -c ' action=' <<<"$log")" "two boots in the boot log"
assert_contains "$log" " profile=writer prior_state=running action=started prior_exit=unclean" "writer died with the first container"
assert_contains "$log" " profile=coder prior_state=stopped action=registered prior_exit=clean" "coder was stopped cleanly"
