#!/bin/bash
# hermes-svscan-perms against real s6: before it runs, hermes gets EACCES
# (exit 111) from every s6 tool on the static services and from
# s6-svscanctl; after it, s6-svstat, s6-svc and s6-svscanctl work,
# s6-svperms reads the -G model, subscribing (s6-svwait) is still refused
# (root's s6-supervise follows symlinks in event/), s6rc-* services stay
# root-only, and -n is a faithful, read-only doctor.
# Both topologies; leftovers of slot builds are swept without following.
# shellcheck disable=SC2016 # single-quoted scripts run inside the container
# shellcheck source=tests/integration/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

PERMS=/usr/bin/hermes-svscan-perms
SD=/run/s6-rc/servicedirs
LIVE=/run/s6-rc:s6-rc-init:emu
SERVICES=(app web web/log)

# Owner, group, mode and ctime (ns) of everything under the given paths
# (real paths: find does not follow symlinks).
tree_state() {
    emu_root sh -c 'find "$@" -exec stat -c "%n %F %a %U:%G %z" {} +' sh "$@"
}

# ---------------------------------------------------------------- shared ----
emu_boot -n -o "$HERMES_S6_DESTDIR" -S app -L web  # -n: only these static services

# Before: hermes is locked out of every static service and of s6-svscan.
for s in "${SERVICES[@]}"; do
    assert_rc 111 emu_user s6-svstat "$SD/$s"
    assert_contains "$ASSERT_OUT" "unable to check $SD/$s: Permission denied" "s6-svstat $s before"
    assert_rc 111 emu_user s6-svc -dwd -T 2000 "$SD/$s"
    assert_rc 111 emu_user s6-svwait -d -t 1000 "$SD/$s"
    assert_contains "$ASSERT_OUT" "unable to subscribe to events for $SD/$s: Permission denied" "s6-svwait $s before"
done
assert_rc 111 emu_user s6-svscanctl -a /run/service
assert_contains "$ASSERT_OUT" "unable to control /run/service: Permission denied" "s6-svscanctl -a before"
assert_rc 111 emu_user s6-svscanctl -an /run/service
assert_rc 0 emu_root s6-svperms "$SD/app"
assert_contains "$ASSERT_OUT" "$SD/app status: owner" "s6-svperms before"

# The doctor: exit 1, one line per service and scan directory, nothing touched.
before=$(tree_state $LIVE /run/service)
sleep 0.05
assert_rc 1 emu_root $PERMS -n -T shared
assert_eq "service $SD/app: status no (supervise/ 0700 0:0), control no (supervise/ 0700 0:0), events not granted (event/ 3730 0:0; root's s6-supervise writes to every entry of event/ and follows symlinks)
service $SD/web: status no (supervise/ 0700 0:0), control no (supervise/ 0700 0:0), events not granted (event/ 3730 0:0; root's s6-supervise writes to every entry of event/ and follows symlinks)
service $SD/web/log: status no (supervise/ 0700 0:0), control no (supervise/ 0700 0:0), events not granted (event/ 3730 0:0; root's s6-supervise writes to every entry of event/ and follows symlinks)
scandir /run/service (shared): slots no (scan directory 0755 0:0), svscanctl no (.s6-svscan/ 0700 0:0)" "$ASSERT_OUT" "-n report before"
assert_eq "$before" "$(tree_state $LIVE /run/service)" "-n changed modes, owners or ctimes"

# Upstream's fix (control and lock chowned, .s6-svscan/ left 0700) is not
# enough with s6 2.11; the doctor says why.
emu_root chown hermes:hermes /run/service/.s6-svscan/control /run/service/.s6-svscan/lock
assert_rc 111 emu_user s6-svscanctl -a /run/service
assert_rc 1 emu_root $PERMS -n -T shared
assert_contains "$ASSERT_OUT" "svscanctl no (.s6-svscan/ 0700 0:0)" "-n on upstream's fix"

# The real run: silent, exit 0.
assert_rc 0 emu_root $PERMS -T shared
assert_eq "" "$ASSERT_OUT" "silent on success"

# After: status and control work for hermes, s6-svperms reads the -G
# model; events are not granted (s6-svwait and s6-svc -w subscribe).
for s in "${SERVICES[@]}"; do
    assert_rc 0 emu_user s6-svstat "$SD/$s"
    assert_contains "$ASSERT_OUT" "down (" "s6-svstat $s after"
    assert_rc 0 emu_user s6-svc -d "$SD/$s"
    assert_rc 111 emu_user s6-svwait -d -t 1000 "$SD/$s"
    assert_contains "$ASSERT_OUT" "unable to subscribe to events for $SD/$s: Permission denied" "s6-svwait $s after"
    assert_rc 0 emu_root s6-svperms "$SD/$s"
    assert_contains "$ASSERT_OUT" "$SD/$s status: group hermes
$SD/$s control: group hermes" "s6-svperms $s after"
    assert_not_contains "$ASSERT_OUT" "events: group hermes" "s6-svperms $s after"
done
assert_eq "710 root:hermes 620 root:hermes 3730 root:root" \
    "$(emu_root stat -c '%a %U:%G' $SD/app/supervise $SD/app/supervise/control $SD/app/event | tr '\n' ' ' | sed 's/ $//')" \
    "app's modes"
assert_rc 0 emu_user s6-svc -u "$SD/app"
wait_until 5000 emu_user sh -c "s6-svstat -o up $SD/app | grep -qx true"
assert_contains "$(emu_user s6-svstat "$SD/app")" "up (pid " "hermes started app"
assert_rc 0 emu_user s6-svc -d "$SD/app"
wait_until 5000 emu_user sh -c "s6-svstat -o up $SD/app | grep -qx false"

# s6-rc's own services are untouched, still root-only.
for s in s6rc-oneshot-runner s6rc-fdholder; do
    assert_eq "700 root:root 600 root:root 3730 root:root" \
        "$(emu_root stat -c '%a %U:%G' $SD/$s/supervise $SD/$s/supervise/control $SD/$s/event | tr '\n' ' ' | sed 's/ $//')" \
        "$s untouched"
    assert_rc 111 emu_user s6-svstat "$SD/$s"
done

# s6-svscanctl as hermes: -a and -an work, and really scan and prune.
assert_eq "710 root:hermes 620 root:hermes 755 hermes:hermes" \
    "$(emu_root stat -c '%a %U:%G' /run/service/.s6-svscan /run/service/.s6-svscan/control /run/service | tr '\n' ' ' | sed 's/ $//')" \
    ".s6-svscan and the scan directory"
assert_rc 0 emu_user s6-svscanctl -a /run/service
assert_rc 0 emu_user s6-svscanctl -an /run/service
# This is the shared topology's risk, shown: a slot hermes writes is run by
# root's supervisor, as root.
emu_user sh -ec '
    mkdir /run/service/.slot.tmp
    printf "%s\n" "#!/bin/sh" "id -u >/tmp/slot.uid" "exec sleep 100000" >/run/service/.slot.tmp/run
    chmod 0755 /run/service/.slot.tmp/run
    mv /run/service/.slot.tmp /run/service/slot'
assert_rc 0 emu_user s6-svscanctl -a /run/service
wait_until 5000 emu_root test -s /tmp/slot.uid
assert_eq 0 "$(emu_root cat /tmp/slot.uid)" "a hermes-written slot in root's scan directory runs as root"
assert_rc 0 emu_root pgrep -f 's6-supervise slot'
# The doctor names that risk for the slot (the topology's own: exit 0).
assert_rc 0 emu_root $PERMS -n -T shared
assert_contains "$ASSERT_OUT" "slot /run/service/slot: RISK (service directory 0755 10000:10000: under root's s6-supervise the user can make root overwrite any file (a symlink at supervise/status.new, or in event/))" "-n: the slot's risk"
emu_user mv /run/service/slot /run/service/.slot.gone
assert_rc 0 emu_user s6-svscanctl -an /run/service
wait_until 5000 sh -c "! '$HERMES_EMU' root '$EMU' pgrep -f 's6-supervise slot' >/dev/null"
# (its supervise/ is root's 0700, made by that root supervisor)
emu_root rm -rf /run/service/.slot.gone

# The doctor now: exit 0, all yes, and still read-only.
before=$(tree_state $LIVE /run/service)
sleep 0.05
assert_rc 0 emu_root $PERMS -n -T shared
assert_not_contains "$ASSERT_OUT" " no " "-n after"
assert_eq 4 "$(wc -l <<<"$ASSERT_OUT")" "-n lines after"
assert_eq "$before" "$(tree_state $LIVE /run/service)" "-n changed something after"

# Idempotent: a second run (even -v) prints nothing and changes nothing.
assert_rc 0 emu_root $PERMS -v -T shared
assert_eq "" "$ASSERT_OUT" "second run is silent"
assert_eq "$before" "$(tree_state $LIVE /run/service)" "second run changed something"

# A root-owned 0700 leftover of an interrupted slot build, with a FIFO with
# no reader, a symlink to /etc and a nested directory, is removed; nothing
# outside it changes.
emu_root sh -ec '
    t=/run/service/.gateway-default.tmp
    mkdir -p $t/log/supervise $t/supervise
    mkfifo $t/supervise/control $t/fifo
    ln -s /etc $t/etc
    ln -s /etc/passwd $t/log/passwd
    echo "#!/bin/sh" >$t/run
    chmod 0700 $t $t/log $t/supervise'
etc_before=$(emu_root sh -c 'stat -c "%n %a %U:%G %z" /etc /etc/passwd /etc/group; sha256sum /etc/passwd')
rest_before=$(tree_state $LIVE /run/service/.s6-svscan)
assert_rc 1 emu_root $PERMS -n -T shared
assert_eq "leftover /run/service/.gateway-default.tmp: would remove" "$(grep '^leftover' <<<"$ASSERT_OUT")" "-n sees the leftover"
assert_rc 0 emu_root $PERMS -v -T shared
assert_eq "hermes-svscan-perms: info: remove /run/service/.gateway-default.tmp" "$ASSERT_OUT" "-v: one line per change"
assert_rc 1 emu_root test -e /run/service/.gateway-default.tmp
assert_eq "$etc_before" "$(emu_root sh -c 'stat -c "%n %a %U:%G %z" /etc /etc/passwd /etc/group; sha256sum /etc/passwd')" "/etc untouched"
assert_eq "$rest_before" "$(tree_state $LIVE /run/service/.s6-svscan)" "the rest untouched"
emu_down "$EMU"

# -------------------------------------------------------------- isolated ----
emu_boot -n -o "$HERMES_S6_DESTDIR" -S app -L web  # -n: only these static services

assert_rc 111 emu_user s6-svstat "$SD/app"
root_scan=$(tree_state /run/service/.s6-svscan)
before=$(tree_state $LIVE /run/service)
assert_rc 1 emu_root $PERMS -n
assert_contains "$ASSERT_OUT" "scandir /run/hermes/service (user's): slots no (missing)" "-n: no user scan directory yet"
assert_contains "$ASSERT_OUT" "scandir /run/service (root's, left root-only): slots no (scan directory 0755 0:0), svscanctl no (.s6-svscan/ 0700 0:0)" "-n: root's scan directory"
assert_eq "$before" "$(tree_state $LIVE /run/service)" "-n changed something"
assert_rc 1 emu_root test -e /run/hermes

assert_rc 0 emu_root $PERMS
assert_eq "" "$ASSERT_OUT" "silent on success"
assert_eq "755 root:root 755 hermes:hermes" \
    "$(emu_root stat -c '%a %U:%G' /run/hermes /run/hermes/service | tr '\n' ' ' | sed 's/ $//')" \
    "the user scan directory and its parent"
assert_eq "$root_scan" "$(tree_state /run/service/.s6-svscan)" "root's .s6-svscan untouched"
assert_eq "700 root:root 755 root:root" \
    "$(emu_root stat -c '%a %U:%G' /run/service/.s6-svscan /run/service | tr '\n' ' ' | sed 's/ $//')" \
    "root's scan directory stays root-only"
assert_rc 111 emu_user s6-svscanctl -a /run/service
for s in "${SERVICES[@]}"; do
    assert_rc 0 emu_user s6-svstat "$SD/$s"
    assert_rc 0 emu_user s6-svc -d "$SD/$s"
    assert_rc 111 emu_user s6-svwait -d -t 1000 "$SD/$s"
done
assert_rc 0 emu_root $PERMS -n
assert_contains "$ASSERT_OUT" "scandir /run/hermes/service (user's): slots yes" "-n after"

# The point of the topology: a slot in the user's scan directory, under the
# user's own s6-svscan, runs as hermes, never as root.
emu_user sh -c 's6-svscan /run/hermes/service </dev/null >/dev/null 2>&1 &'
wait_until 5000 emu_user test -p /run/hermes/service/.s6-svscan/control
emu_user sh -ec '
    mkdir /run/hermes/service/.gateway-one.tmp
    printf "%s\n" "#!/bin/sh" "id -u >/tmp/one.uid" "exec sleep 100000" >/run/hermes/service/.gateway-one.tmp/run
    chmod 0755 /run/hermes/service/.gateway-one.tmp/run
    mv /run/hermes/service/.gateway-one.tmp /run/hermes/service/gateway-one'
assert_rc 0 emu_user s6-svscanctl -a /run/hermes/service
wait_until 5000 emu_root test -s /tmp/one.uid
assert_eq 10000 "$(emu_root cat /tmp/one.uid)" "a slot in the user's scan directory runs as hermes"

# A root-owned leftover in the user's scan directory (upstream #60774) is swept.
emu_root sh -ec '
    t=/run/hermes/service/.gateway-two.tmp
    mkdir -p $t/supervise && mkfifo $t/supervise/control && ln -s /etc $t/etc && chmod 0700 $t'
assert_rc 1 emu_user rm -rf /run/hermes/service/.gateway-two.tmp
assert_rc 0 emu_root $PERMS
assert_rc 1 emu_root test -e /run/hermes/service/.gateway-two.tmp
assert_rc 0 emu_root test -d /run/hermes/service/gateway-one
