#!/bin/bash
# hermes-seed-supervise against a real root s6-supervise: hermes can read
# the status of a seeded slot and start and stop it; the same slot built
# without the tool gives hermes EACCES (exit 111) on every s6 tool.
# shellcheck source=tests/integration/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

emu_boot -o "$HERMES_S6_DESTDIR"

# Build a gateway-like slot in a dot-dir (s6-svscan ignores it), as root.
# shellcheck disable=SC2016 # the inner script expands its own $1 and $2
build_slot() {
    local name=$1 seed=$2
    emu_root sh -ec '
        tmp=/run/service/.$1.tmp
        mkdir -p "$tmp/log"
        printf "%s\n" "#!/bin/sh" "exec sleep 100000" >"$tmp/run"
        printf "%s\n" "#!/bin/sh" "exec cat >/dev/null" >"$tmp/log/run"
        chmod 0755 "$tmp/run" "$tmp/log/run"
        if [ "$2" = yes ]; then /usr/bin/hermes-seed-supervise -u hermes "$tmp"; fi
        mv "$tmp" "/run/service/$1"
        s6-svscanctl -a /run/service
    ' sh "$name" "$seed"
    wait_until 5000 emu_root s6-svok "/run/service/$name"
    wait_until 5000 emu_root s6-svok "/run/service/$name/log"
}

build_slot gateway-seeded yes
build_slot gateway-plain no

S=/run/service/gateway-seeded
P=/run/service/gateway-plain

# The supervisor ran as root and kept the skeleton as it was.
assert_eq "hermes:hermes 3730 hermes:hermes 755 hermes:hermes 660 root:root 644" \
    "$(emu_root stat -c '%U:%G %a' $S/event $S/supervise $S/supervise/control $S/supervise/lock | tr '\n' ' ' | sed 's/ $//')" \
    "skeleton after a root s6-supervise started"
assert_eq "no" "$(emu_root sh -c "[ -e $S/supervise/event ] && echo yes || echo no")" "no supervise/event"

# As hermes: status, start, stop, wait, on the service and its logger.
assert_rc 0 emu_user s6-svstat $S
assert_rc 0 emu_user s6-svstat $S/log
assert_rc 0 emu_user s6-svc -uwu -T 5000 $S
assert_contains "$(emu_user s6-svstat $S)" "up (pid " "up after s6-svc -u as hermes"
assert_rc 0 emu_user s6-svwait -u -t 1000 $S
assert_rc 0 emu_user s6-svc -dwd -T 5000 $S
assert_contains "$(emu_user s6-svstat $S)" "down (" "down after s6-svc -d as hermes"
assert_rc 0 emu_user s6-svc -r -T 1000 $S

# The same slot without the skeleton: hermes is locked out (the bug class).
assert_rc 111 emu_user s6-svstat $P
assert_contains "$ASSERT_OUT" "Permission denied" "s6-svstat on the plain slot"
assert_rc 111 emu_user s6-svc -u $P
assert_rc 111 emu_user s6-svwait -u -t 500 $P
assert_rc 111 emu_user s6-svstat $P/log
assert_eq "root:root 700" "$(emu_root stat -c '%U:%G %a' $P/supervise)" "plain slot's supervise/"

# Seeding a live slot afterwards cannot help (s6-supervise already made it
# root-only) and must say so rather than pretend.
assert_rc 0 emu_root /usr/bin/hermes-seed-supervise -u hermes $P
assert_contains "$ASSERT_OUT" "warning: keeping existing $P/supervise (0700 0:0)" "live slot warning"
assert_rc 111 emu_user s6-svstat $P
