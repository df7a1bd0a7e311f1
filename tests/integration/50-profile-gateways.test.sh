#!/bin/bash
# The profile-gateways longrun. Isolated topology: an s6-svscan running as
# hermes on /run/hermes/service, where a slot hermes creates runs as hermes,
# while root's /run/service stays closed to hermes. Shared topology: the
# longrun is ready at once and only waits. No topology: parked at once.
# shellcheck disable=SC2016 # inner sh -c scripts expand their own variables
# shellcheck source=tests/integration/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

PG=/run/service/profile-gateways

# --- isolated (the default) ---------------------------------------------------
emu_boot -o "$HERMES_S6_DESTDIR"
emu_root install -d -o hermes -g hermes -m 0755 /run/hermes/service
# What s6-rc does to bring a longrun up.
emu_root sh -c "rm -f $PG/down && s6-svc -uwu -T 5000 $PG"
wait_until 5000 emu_root test -p /run/hermes/service/.s6-svscan/control
# Its bound is 4000 services and loggers: -C since s6 2.12, -c before.
bound=-C
[[ ${HERMES_S6_VERSION:-2.11} == 2.11.* ]] && bound=-c
scanner=$(emu_root sh -c 'for p in /proc/[0-9]*; do
    [ "$(cat $p/comm 2>/dev/null)" = s6-svscan ] && case "$(tr "\0" " " <$p/cmdline)" in *"s6-svscan $1 4000 -d 3 /run/hermes/service ") true ;; *) false ;; esac &&
        stat -c %u "$p"; done; true' sh "$bound")
assert_eq 10000 "$scanner" "the user's scanner runs as hermes, with $bound 4000"
assert_eq "hermes 700" "$(emu_root stat -c '%U %a' /run/hermes/service/.s6-svscan)" "its control dir is hermes's"

# hermes adds a slot and rescans by itself; the slot's run runs as hermes.
emu_user sh -ec '
    d=/run/hermes/service/.probe.tmp
    mkdir "$d"
    printf "%s\n" "#!/bin/sh" "id -u >/run/hermes/service/.probe-uid" "exec sleep 100000" >"$d/run"
    chmod 0755 "$d/run"
    mv "$d" /run/hermes/service/probe
    s6-svscanctl -a /run/hermes/service'
wait_until 5000 emu_root test -s /run/hermes/service/.probe-uid
assert_eq 10000 "$(emu_root cat /run/hermes/service/.probe-uid)" "a slot of the user's scanner runs as hermes"
assert_rc 0 emu_user s6-svstat /run/hermes/service/probe

# Root's scan directory stays closed: hermes can neither add a service nor rescan.
assert_rc 1 emu_user mkdir /run/service/evil
assert_contains "$ASSERT_OUT" "Permission denied" "hermes cannot write root's scandir"
assert_rc 111 emu_user s6-svscanctl -a /run/service
assert_eq "root 700" "$(emu_root stat -c '%U %a' /run/service/.s6-svscan)" "root's .s6-svscan untouched"
emu_down "$EMU"

# --- shared: up and ready at once, then it only waits -----------------------
# (a longrun that exits before readiness fails s6-rc's start of the user
# bundle, and legacy-services, the one rescan of /run/service, never runs)
emu_boot -o "$HERMES_S6_DESTDIR" -e HERMES_S6_TOPOLOGY=shared
assert_rc 0 emu_root sh -c "rm -f $PG/down && s6-svc -uwU -T 5000 $PG"
sleep 1.5
assert_eq "true true" "$(emu_root s6-svstat -o up,ready $PG)" "shared: up and ready, and stays so"
assert_eq "" "$(emu_root sh -c 'for p in /proc/[0-9]*; do [ "$(cat $p/comm 2>/dev/null)" = s6-svscan ] && grep -l /run/hermes/service $p/cmdline; done; true')" "no user scanner in the shared topology"
emu_down "$EMU"

# --- no topology: a failed start, parked, not restarted --------------------------
emu_boot -o "$HERMES_S6_DESTDIR" -e HERMES_S6_TOPOLOGY=isolate
assert_rc 1 emu_root sh -c "rm -f $PG/down && s6-svc -uwU -T 5000 $PG"
# (s6-svc 2.11: "failed permanently"; 2.13+: "reported permanent failure")
assert_contains "$ASSERT_OUT" "permanent" "s6-rc sees a failed start, not a wait without end"
sleep 1.5
assert_eq "false false" "$(emu_root s6-svstat -o up,wantedup $PG)" "still parked after the restart delay"
