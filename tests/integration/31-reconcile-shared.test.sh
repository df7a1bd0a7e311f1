#!/bin/bash
# hermes-reconcile, shared topology: slots in root's /run/service, run by
# root's s6-supervise. The run scripts drop to hermes, so the gateways run
# as UID 10000; the skeleton lets hermes control them, which a slot built
# without it does not allow. A rerun, as root this time, changes nothing.
# shellcheck disable=SC2016 # single-quoted scripts run inside the container
# shellcheck source=tests/integration/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/reconcile.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/reconcile.sh"

emu_boot -o "$HERMES_S6_DESTDIR" -o "$(rec_overlay)" -o "$(emu_standin_overlay)" -e HERMES_HOME=/opt/data
emu_root install -d -m 1777 /run/standin
rec_profiles
S=/run/service
# What the shared topology's permissions stage gives hermes: the scan
# directory itself (upstream's layout).
emu_root chown hermes:hermes $S

# No /run/hermes/service: /run/service is the default.
assert_rc 0 emu_user /usr/bin/hermes-reconcile
assert_contains "$ASSERT_OUT" "reconcile: profile=coder prior_state=running action=started" "report"
emu_root s6-svscanctl -a $S
for p in default coder writer idle broken crashy; do
    wait_until 5000 emu_root s6-svok $S/gateway-$p
done

# Root's supervisor ran run as root; run dropped to hermes.
assert_eq 0 "$(emu_root sh -c 'stat -c %u /proc/"$(pgrep -xf "s6-supervise gateway-coder")"')" "root's s6-supervise runs the slot"
rec_gateway_up $S/gateway-default "gateway run --replace"
rec_gateway_up $S/gateway-coder "-p coder gateway run --replace"
for p in broken crashy idle writer; do
    rec_down_normally_down $S/gateway-$p
done
assert_eq "hermes:hermes 755 hermes:hermes 660 root:root 644" \
    "$(emu_root stat -c '%U:%G %a' $S/gateway-writer/supervise $S/gateway-writer/supervise/control $S/gateway-writer/supervise/lock | tr '\n' ' ' | sed 's/ $//')" \
    "the skeleton survived root's s6-supervise"

# hermes controls a slot of root's supervisor...
assert_rc 0 emu_user s6-svc -u $S/gateway-writer
rec_gateway_up $S/gateway-writer "-p writer gateway run --replace"

# ...which a slot built the same way but without the skeleton does not allow.
emu_root sh -ec '
    cp -R /run/service/gateway-idle /run/service/.plain
    rm -rf /run/service/.plain/supervise /run/service/.plain/event /run/service/.plain/log/supervise /run/service/.plain/log/event
    mv /run/service/.plain /run/service/plain
    s6-svscanctl -a /run/service
'
wait_until 5000 emu_root s6-svok $S/plain
assert_rc 111 emu_user s6-svc -u $S/plain
assert_contains "$ASSERT_OUT" "Permission denied" "hermes on a slot without the skeleton"
assert_rc 111 emu_user s6-svstat $S/plain

# Loggers: started as root, s6-log runs as hermes and owns its files.
wait_until 5000 emu_root grep -q "hello from hermes -p coder" /opt/data/logs/gateways/coder/current
assert_eq "hermes:hermes" "$(emu_root stat -c %U:%G /opt/data/logs/gateways/coder/current)" "coder's log belongs to hermes"
assert_eq 10000 "$(emu_root sh -c 'for p in $(pgrep -x s6-log); do stat -c %u /proc/$p; done | sort -u')" "every s6-log runs as hermes"

rec_finish_semantics $S

# A second run, as root with -u hermes, on live slots: nothing changes.
before=$(emu_root sh -c 'stat -c "%n %i %Z" /run/service/gateway-*/run /run/service/gateway-* | sort')
pids=$(emu_root s6-svstat -o pid $S/gateway-coder $S/gateway-default)
assert_rc 0 emu_root /usr/bin/hermes-reconcile -u hermes
assert_eq "$before" "$(emu_root sh -c 'stat -c "%n %i %Z" /run/service/gateway-*/run /run/service/gateway-* | sort')" "a rerun touched a slot"
assert_eq "$pids" "$(emu_root s6-svstat -o pid $S/gateway-coder $S/gateway-default)" "the gateways kept running"
assert_eq "" "$(emu_root sh -c 'ls -A /run/service | grep "^\.gateway-" || true')" "no staging directory left"
