#!/bin/bash
# hermes-reconcile and the container's command, found in /proc as
# s6-overlay v3 runs it (rc.init, then the image's main-wrapper.sh): a
# dashboard container reconciles nothing; a legacy `gateway run` container
# gets its intent migrated once; HERMES_GATEWAY_NO_SUPERVISE opts out.
# shellcheck disable=SC2016 # single-quoted scripts run inside the container
# shellcheck source=tests/integration/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/reconcile.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/reconcile.sh"

emu_boot -o "$HERMES_S6_DESTDIR" -o "$(emu_standin_overlay)"
S=/run/hermes/service
emu_root install -d -o hermes -g hermes -m 0755 $S
emu_root sh -ec 'mkdir -p /run/s6/basedir/scripts; printf "%s\n" "sleep 100000" ":" >/run/s6/basedir/scripts/rc.init'
emu_user sh -ec 'mkdir -p /opt/data/profiles/coder; echo soul >/opt/data/profiles/coder/SOUL.md; echo 1 >/opt/data/gateway.pid'

# command ARGS...: start stage 2's shell with the wrapper and ARGS as the
# container's command; sets CMD_PID (a pid inside the container).
command() {
    CMD_PID=$(emu_root sh -c 'setsid /bin/sh -e /run/s6/basedir/scripts/rc.init top /opt/hermes/docker/main-wrapper.sh "$@" </dev/null >/dev/null 2>&1 & echo $!' sh "$@")
    wait_until 3000 emu_root grep -q main-wrapper.sh "/proc/$CMD_PID/cmdline"
}

command dashboard --no-open
assert_rc 0 emu_user /usr/bin/hermes-reconcile
assert_eq "reconcile: skipping (dashboard container: it runs no profile gateways)" "$ASSERT_OUT" "dashboard skip"
assert_eq "" "$(emu_root ls -A $S)" "no slot in a dashboard container"
assert_eq "1" "$(emu_root cat /opt/data/gateway.pid)" "nothing touched in the home"
assert_eq "no" "$(emu_root sh -c '[ -e /opt/data/logs ] && echo yes || echo no')" "no boot log"
emu_root kill "$CMD_PID"

# Without a dashboard command the same container reconciles.
command gateway run
assert_rc 0 emu_user env HERMES_GATEWAY_NO_SUPERVISE=yes /usr/bin/hermes-reconcile
assert_contains "$ASSERT_OUT" "reconcile: profile=default prior_state=None action=registered" "opted out of the migration"
assert_eq "no" "$(emu_root sh -c '[ -e /opt/data/gateway_state.json ] && echo yes || echo no')" "no migration record"

assert_rc 0 emu_user /usr/bin/hermes-reconcile
assert_contains "$ASSERT_OUT" "reconcile: profile=default prior_state=running action=started" "legacy gateway run migrated"
record=$(emu_root cat /opt/data/gateway_state.json)
assert_contains "$record" '"desired_state": "running"' "migration record"
assert_contains "$record" '"migrated_from": "legacy-container-cmd"' "migration record"
assert_eq "hermes 644" "$(emu_root stat -c '%U %a' /opt/data/gateway_state.json)" "the record is the user's"
assert_eq "no" "$(emu_root sh -c '[ -e /run/hermes/service/gateway-default/down ] && echo yes || echo no')" "gateway-default starts"
assert_rc 0 emu_user /usr/bin/hermes-reconcile
assert_eq "$record" "$(emu_root cat /opt/data/gateway_state.json)" "migrated once only"
emu_root kill "$CMD_PID"
