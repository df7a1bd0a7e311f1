#!/bin/bash
# hermes-reconcile, isolated topology: slots in /run/hermes/service, scanned
# by an s6-svscan running as hermes. After a reconcile run as hermes, the
# gateways recorded as running are up as UID 10000 with the right argv,
# HOME and cwd; the others are down and normally down; hermes starts one
# with s6-svc -u; finish parks exits 0 and 78 and restarts exit 1; each
# logger writes $HERMES_HOME/logs/gateways/<p>/current as hermes.
# shellcheck disable=SC2016 # single-quoted scripts run inside the container
# shellcheck source=tests/integration/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/reconcile.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/reconcile.sh"

emu_boot -o "$HERMES_S6_DESTDIR" -o "$(rec_overlay)" -o "$(emu_standin_overlay)" -e HERMES_HOME=/opt/data
emu_root install -d -m 1777 /run/standin
rec_profiles
S=/run/hermes/service

# Without the tool there is nothing to start: the test can fail.
emu_root install -d -o hermes -g hermes -m 0755 $S
assert_rc 111 emu_user s6-svc -u $S/gateway-coder
assert_eq 0 "$(rec_calls 'argv=.*gateway run')" "no gateway before reconcile"

# The cont-init stage: reconcile as hermes; /run/hermes/service exists, so
# it is the default scan directory.
assert_rc 0 emu_user /usr/bin/hermes-reconcile
assert_eq "reconcile: profile=default prior_state=running action=started
reconcile: profile=broken prior_state=startup_failed action=registered
reconcile: profile=coder prior_state=running action=started
reconcile: profile=crashy prior_state=starting action=registered
reconcile: profile=idle prior_state=None action=registered
reconcile: profile=writer prior_state=stopped action=registered" "$ASSERT_OUT" "report"
assert_eq "gateway-broken gateway-coder gateway-crashy gateway-default gateway-idle gateway-writer" \
    "$(emu_root ls $S | tr '\n' ' ' | sed 's/ $//')" "one slot per profile, nothing else"

# Then the user's s6-svscan starts (after cont-init, as in the image).
rec_user_svscan
assert_eq 10000 "$(emu_root sh -c 'for p in $(pgrep -x s6-svscan); do [ "$p" = 1 ] || stat -c %u /proc/$p; done')" "the user's s6-svscan runs as hermes"

rec_gateway_up $S/gateway-default "gateway run --replace"
rec_gateway_up $S/gateway-coder "-p coder gateway run --replace"
for p in broken crashy idle writer; do
    rec_down_normally_down $S/gateway-$p
done
assert_eq 0 "$(rec_calls 'argv=-p (broken|crashy|idle|writer) ')" "no down gateway was started"

# hermes starts a down one.
assert_rc 0 emu_user s6-svc -u $S/gateway-writer
rec_gateway_up $S/gateway-writer "-p writer gateway run --replace"
assert_eq "true false" "$(emu_user s6-svstat -o up,normallyup $S/gateway-writer)" "started by hand, still normally down"

# The loggers: s6-log as hermes, in HERMES_HOME (from the container
# environment) at run time.
for p in default coder writer; do
    wait_until 5000 emu_root grep -q "hello from hermes" /opt/data/logs/gateways/$p/current
    assert_eq "hermes:hermes" "$(emu_root stat -c %U:%G /opt/data/logs/gateways/$p/current)" "$p's log belongs to hermes"
done
assert_contains "$(emu_root cat /opt/data/logs/gateways/coder/current)" " hello from hermes -p coder gateway run --replace" "coder's log line"
assert_eq 10000 "$(emu_root sh -c 'for p in $(pgrep -x s6-log); do stat -c %u /proc/$p; done | sort -u')" "every s6-log runs as hermes"

rec_finish_semantics $S

# The boot log.
log=$(emu_root cat /opt/data/logs/container-boot.log)
assert_eq 6 "$(grep -c ' action=' <<<"$log")" "one boot-log line per slot"
assert_contains "$log" " profile=coder prior_state=running action=started prior_exit=unknown" "boot log line"
