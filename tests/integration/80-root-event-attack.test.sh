#!/bin/bash
# The event/ symlink attack on a root-supervised service, in the booted
# image (isolated topology, the default). Root's s6-supervise opens every
# 39-byte ftrig1:@... entry of a service's event/ for writing and follows
# symlinks: a user who may create entries there makes root overwrite any
# file. As hermes, after the boot's hermes-svscan-perms: a symlink to a
# root-owned canary is planted (or refused) in the dashboard's event/, the
# dashboard is brought up and down; the canary must be unchanged, and
# hermes must still read and control the dashboard (s6-svstat, s6-svc, and
# hermes-slot's waits, which poll the status where they cannot subscribe).
# An event/ left group-writable by an earlier run, with a symlink planted in
# it, is closed and emptied by the boot. The shared topology closes root's
# services the same way, and its doctor names each slot's own risk.
# shellcheck disable=SC2016 # single-quoted scripts run inside the container
# shellcheck source=tests/integration/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

D=/run/s6-rc/servicedirs/dashboard
CANARY=/etc/hermes-canary
# The only length s6 notifies: ftrig1:@ and 31 more bytes.
fifo_name() { printf 'ftrig1:@%s' "$(printf "%031d" 0 | tr 0 "$1")"; }
canary() { emu_root sh -c 'stat -c "%U:%G %a %s" "$1"; sha256sum "$1"' sh "$CANARY"; }

emu_boot -o "$HERMES_S6_DESTDIR" -o "$(emu_standin_overlay)" -e HERMES_HOME=/opt/data
emu_root install -d -m 1777 /run/standin
emu_root sh -c 'printf "root:secret:1:0:99999:7:::\n" >"$1" && chmod 0600 "$1"' sh "$CANARY"
before=$(canary)

# What an earlier run of the old hermes-svscan-perms left (s6-svperms -E):
# event/ open to hermes's group, and hermes used it.
emu_root chgrp hermes $D/event
emu_user ln -s $CANARY "$D/event/$(fifo_name a)"

out=$(emu_stage2 2>&1)
assert_contains "$out" "/etc/cont-init.d/015-supervise-perms exited 0" "the perms stage"
assert_eq "3730 root:root" "$(emu_root stat -c '%a %U:%G' $D/event)" "event/ closed again"
assert_eq "" "$(emu_root find $D/event -mindepth 1 ! -type p)" "what hermes planted is gone"

# The attack, as hermes: plant, then make root's supervisor send events.
emu_user ln -s $CANARY "$D/event/$(fifo_name b)" || true
emu_user ln -s $CANARY "$D/log/event/$(fifo_name b)" 2>/dev/null || true
emu_root sh -c 'printf "%s\n" 1 >/run/s6/container_environment/HERMES_DASHBOARD'
assert_rc 0 emu_user s6-svc -u $D
wait_until 5000 emu_user sh -c "s6-svstat -o up $D | grep -qx true"
assert_rc 0 emu_user s6-svc -d $D
wait_until 5000 emu_user sh -c "s6-svstat -o up $D | grep -qx false"
assert_eq "$before" "$(canary)" "root's s6-supervise wrote through a symlink hermes planted"
assert_rc 1 emu_user ln -s $CANARY "$D/event/$(fifo_name c)"
assert_contains "$ASSERT_OUT" "Permission denied" "hermes may not create entries in event/"

# hermes still reads and controls the dashboard...
assert_rc 0 emu_user s6-svstat $D
assert_rc 0 emu_user s6-svc -u $D
# ...but s6's own waits need a subscription, which is no longer granted.
assert_rc 111 emu_user s6-svwait -u -t 2000 $D
# hermes-slot's waits poll the status instead. The dashboard is reached as
# a slot through a bind mount: hermes-slot addresses gateway-<profile>. The
# probe directory is the user's, as a scan directory is (hermes-slot keeps
# its per-profile lock file there).
emu_root sh -ec 'mkdir -p /run/probe/gateway-dash && chown hermes:hermes /run/probe && mount --bind "$1" /run/probe/gateway-dash' sh $D
slot() { emu_user /usr/bin/hermes-slot -s /run/probe -H /tmp/probe-home -t 10000 "$@"; }
assert_rc 0 slot stop -w dash
assert_eq "false false" "$(emu_user s6-svstat -o up,wantedup $D)" "stop -w: down when it returns"
assert_rc 0 slot start -w dash
assert_eq "true true" "$(emu_user s6-svstat -o up,wantedup $D)" "start -w: up when it returns"
pid=$(emu_user s6-svstat -o pid $D)
assert_rc 0 slot restart -w dash
new=$(emu_user s6-svstat -o pid $D)
[[ $new != -1 && $new != "$pid" ]] || fail "restart -w: returned with pid $new (was $pid)"
assert_eq "$new: up" "$new: $(emu_user s6-svstat -o up $D | sed 's/true/up/')" "restart -w: up again"
assert_rc 0 slot stop -w dash
assert_eq "" "$(emu_root ls -A $D/event)" "no subscriber left behind"
assert_eq "$before" "$(canary)" "the canary, at the end"

# The doctor says why, per service.
assert_rc 0 emu_root /usr/bin/hermes-svscan-perms -n
assert_contains "$ASSERT_OUT" "service $D: status yes, control yes, events not granted (event/ 3730 0:0; root's s6-supervise writes to every entry of event/ and follows symlinks)" "-n on the dashboard"
emu_root umount /run/probe/gateway-dash
emu_down "$EMU"

# The shared topology: root's static services are closed the same way, and
# the doctor names the layout's own risk for every slot in /run/service.
emu_boot -o "$HERMES_S6_DESTDIR" -o "$(emu_standin_overlay)" -e HERMES_HOME=/opt/data -e HERMES_S6_TOPOLOGY=shared
emu_root install -d -m 1777 /run/standin
out=$(emu_stage2 2>&1)
assert_contains "$out" "/etc/cont-init.d/02-reconcile-profiles exited 0" "shared: the image booted"
assert_eq "3730 root:root" "$(emu_root stat -c '%a %U:%G' $D/event)" "shared: event/ of root's services"
assert_rc 1 emu_user ln -s $CANARY "$D/event/$(fifo_name d)"
emu_root /usr/bin/hermes-svscan-perms -n -T shared >"$EMU_TMP/doctor" || true
assert_contains "$(cat "$EMU_TMP/doctor")" "slot /run/service/gateway-default: RISK (service directory 0755 10000:10000: under root's s6-supervise the user can make root overwrite any file (a symlink at supervise/status.new, or in event/))" "shared: the slot's risk"
emu_down "$EMU"
