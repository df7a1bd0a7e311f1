#!/usr/bin/env bash
# The dashboard longrun (s6-rc.d/dashboard: dashboard-run, dashboard-finish,
# s6-permafailon) under a real root s6-supervise, brought up the way s6-rc
# does it: disabled it reads down and never loops; enabled it runs as hermes
# with upstream's command line; a bad port, a program that exits 78 or
# cannot be found, and a dashboard that keeps dying are all parked; a
# killed dashboard is restarted. Before booting, the service files
# themselves: no BOM or CRLF, and the execline scripts parse to the
# intended command lines.
# shellcheck disable=SC2016 # single-quoted scripts run inside the container
# shellcheck source=tests/integration/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

SRC=$HERMES_S6_ROOT/s6-rc.d
OV=$HERMES_S6_DESTDIR
EXECLINEB=/usr/lib/execline/bin/execlineb

# ---- the service definition, as written and as installed
while IFS= read -r -d '' f; do
    [[ $(head -c 3 -- "$f" | od -An -tx1 | tr -d ' ') != efbbbf ]] || fail "$f starts with a UTF-8 BOM"
    ! grep -q $'\r' -- "$f" || fail "$f contains a carriage return (CRLF)"
done < <(find "$SRC" "$HERMES_S6_ROOT/rootfs" -type f -print0)
assert_eq longrun "$(cat "$SRC/dashboard/type")" "dashboard/type"
assert_eq "" "$(cat "$SRC/dashboard/dependencies.d/base")" "dashboard depends on base (an empty file)"
assert_eq "$(ls "$SRC/dashboard/dependencies.d")" base "base is the only dependency"
assert_eq '#!/command/execlineb -P' "$(head -n 1 "$SRC/dashboard/run")" "run's interpreter line"
assert_eq '#!/command/execlineb -S0' "$(head -n 1 "$SRC/dashboard/finish")" "finish's interpreter line"
for f in etc/s6-overlay/s6-rc.d/dashboard/{type,dependencies.d/base} etc/s6-overlay/user-bundles.d/user/contents.d/dashboard; do
    assert_eq 644 "$(stat -c %a "$OV/$f")" "installed $f"
done
for f in run finish; do
    assert_eq 755 "$(stat -c %a "$OV/etc/s6-overlay/s6-rc.d/dashboard/$f")" "installed $f"
    cmp -s "$SRC/dashboard/$f" "$OV/etc/s6-overlay/s6-rc.d/dashboard/$f" || fail "installed $f differs from the source"
done

# Parse check without running anything: execlineb lexes the script's own
# text (its first line is an execline comment, as it is when the kernel
# runs the file) behind a probe that prints the argv it was given.
probe=$EMU_TMP/argv-probe
printf '%s\n' '#!/bin/sh' 'for a; do printf "[%s]" "$a"; done' >"$probe"
chmod 0755 "$probe"
assert_eq "[/command/with-contenv][/usr/bin/dashboard-run]" \
    "$("$EXECLINEB" -P -c "$probe $(cat "$SRC/dashboard/run")")" "run parses to"
finish_argv='[/command/with-contenv][/command/s6-permafailon][60][10][0-255][/usr/bin/dashboard-finish]'
assert_eq "${finish_argv}[78][0][dashboard]" \
    "$("$EXECLINEB" -S0 -c "$probe $(cat "$SRC/dashboard/finish")" 78 0 dashboard)" "finish parses to (s6 2.11: 3 args)"
assert_eq "${finish_argv}[256][9][dashboard][4242]" \
    "$("$EXECLINEB" -S0 -c "$probe $(cat "$SRC/dashboard/finish")" 256 9 dashboard 4242)" "finish parses to (s6 >= 2.13: 4 args)"

# ---- boot with the dashboard compiled as s6-rc-init leaves it: held down
emu_boot -o "$OV" -o "$(emu_standin_overlay)"
D=/run/service/dashboard
LOG=$EMU/svscan.log # the services' stdout and stderr
emu_root install -d -m 1777 /run/standin
assert_eq "755 755" "$(emu_root stat -c %a $D/run $D/finish | paste -sd' ')" "compiled run and finish"
assert_eq "false false" "$(emu_root s6-svstat -o up,wantedup $D)" "held down after boot"
# hermes may read the status only once the service's permissions are
# fixed (hermes-svscan-perms does it at boot); here, as s6-svperms would.
assert_rc 111 emu_user s6-svstat $D
emu_root s6-svperms -G hermes -E hermes $D

svstat() { emu_user s6-svstat -o "$1" $D; }
set_env() { emu_root sh -c 'printf "%s\n" "$2" >"/run/s6/container_environment/$1"' sh "$1" "$2"; }
unset_env() { emu_root rm -f "/run/s6/container_environment/$1"; }
calls() { emu_root sh -c 'cat /run/standin/calls 2>/dev/null | grep -c "argv=dashboard" || true'; }
deaths() { emu_root s6-svdt $D | wc -l; }
log_mark() { LOG_FROM=$(($(stat -c %s "$LOG") + 1)); }
log_since() { tail -c "+$LOG_FROM" "$LOG"; }
is_parked() { [[ $(svstat up,wantedup,pid) == "false false -1" ]]; }
is_up() { [[ $(svstat up) == true ]]; }
# is_new_pid OLD: up with a pid other than OLD.
is_new_pid() { local p; p=$(svstat pid); [[ $p != -1 && $p != "$1" ]]; }
# As s6-rc brings a longrun up: remove the down file, then s6-svc -u.
bring_up() { emu_root rm -f $D/down; emu_root s6-svc -u $D; }
# Down, finish done, empty death tally and stand-in log.
fresh() {
    emu_root s6-svc -d $D
    emu_root s6-svwait -D -t 5000 $D
    emu_root s6-svdt-clear $D
    emu_root rm -f /run/standin/calls /run/standin/exit-code
    log_mark
}
# assert_stays_parked CALLS DEATHS: parked now and for 2 s more (s6
# restarts a dead service after 1 s), with that many dashboard starts and
# deaths in all.
assert_stays_parked() {
    local i
    wait_until 5000 is_parked
    for ((i = 0; i < 10; i++)); do
        is_parked || fail "restarted after being parked: $(svstat up,wantedup,pid)"
        sleep 0.2
    done
    assert_eq "$1" "$(calls)" "dashboard starts"
    assert_eq "$2" "$(deaths)" "deaths in the tally"
}

# ---- HERMES_DASHBOARD unset: run exits 0, finish 125, down for good
fresh
bring_up
wait_until 3000 emu_root sh -c "s6-svdt $D | grep -q ."
for ((i = 0; i < 30; i++)); do # 3 s: no restart, no pid
    assert_eq "false false -1" "$(svstat up,wantedup,pid)" "disabled: down, not wanted up, pid 0 (shown as -1)"
    sleep 0.1
done
assert_contains "$(emu_user s6-svstat $D)" "down (exitcode 0)" "s6-svstat as hermes"
assert_eq 0 "$(calls)" "disabled: the dashboard program never started"
assert_eq 1 "$(deaths)" "disabled: run ran exactly once"
assert_eq "" "$(log_since)" "disabled: nothing in the log"

# ---- HERMES_DASHBOARD=1: up within 5 s, as hermes, upstream's command line
set_env HERMES_DASHBOARD 1
fresh
now_ms
t0=$NOW_MS
bring_up
wait_until 5000 is_up
wait_until 5000 emu_root grep -q 'argv=dashboard' /run/standin/calls
now_ms
((NOW_MS - t0 <= 5000)) || fail "the dashboard took $((NOW_MS - t0)) ms to come up"
pid=$(svstat pid)
line=$(emu_root grep 'argv=dashboard' /run/standin/calls)
assert_eq "pid=$pid uid=10000 gid=10000 home=/opt/data cwd=/opt/data argv=dashboard --host 127.0.0.1 --port 9119 --no-open" \
    "$line" "the dashboard's pid (the service's: every step chain-loads), ids, HOME, cwd and argv"
assert_eq "10000 10000" "$(emu_root awk '/^Uid:/ { print $2 } /^Gid:/ { print $2 }' "/proc/$pid/status" | paste -sd' ')" "effective ids"
assert_eq 10000 "$(emu_root awk '/^Groups:/ { print $2 }' "/proc/$pid/status")" "supplementary groups"
assert_eq "true true" "$(svstat up,wantedup)" "up and wanted up"

# ---- killed with SIGKILL: finish says restart, a new pid comes up
emu_root kill -KILL "$pid"
wait_until 5000 is_new_pid "$pid"
assert_eq "true true" "$(svstat up,wantedup)" "restarted after SIGKILL"
assert_eq 2 "$(calls)" "one restart"
assert_not_contains "$(log_since)" "dashboard-finish" "a restart is silent"

# ---- HERMES_DASHBOARD_PORT=9120 is honoured (read again at each start)
set_env HERMES_DASHBOARD_PORT 9120
emu_root s6-svc -r $D
wait_until 5000 emu_root grep -q 'argv=dashboard --host 127.0.0.1 --port 9120 --no-open$' /run/standin/calls
wait_until 5000 is_up
pid=$(svstat pid)
assert_contains "$(emu_root grep "^pid=$pid " /run/standin/calls)" "--port 9120" "the running dashboard has port 9120"

# ---- switched off at run time: parked at the next start
set_env HERMES_DASHBOARD 0
log_mark
emu_root s6-svc -r $D
assert_stays_parked 3 3

# ---- bad ports: exit 78 with a clear message, parked, not restarted
set_env HERMES_DASHBOARD 1
for port in abc 70000; do
    set_env HERMES_DASHBOARD_PORT $port
    fresh
    bring_up
    assert_stays_parked 0 1
    assert_contains "$(log_since)" "dashboard-run: fatal: invalid HERMES_DASHBOARD_PORT value \"$port\": expected a decimal number from 1 to 65535" "port $port: the message"
    assert_contains "$(log_since)" "dashboard-finish: info: the dashboard exited 78 (configuration error): not restarting it" "port $port: parked"
done
unset_env HERMES_DASHBOARD_PORT

# ---- the dashboard itself exits 78 (EX_CONFIG): parked after one start
fresh
emu_root sh -c 'echo 78 >/run/standin/exit-code'
bring_up
assert_stays_parked 1 1
assert_contains "$(log_since)" "the dashboard exited 78" "exit 78: parked"

# ---- a dashboard that keeps dying: 10 deaths within 60 s, then parked
fresh
emu_root sh -c 'echo 1 >/run/standin/exit-code'
bring_up
wait_until 20000 is_parked
assert_stays_parked 10 10
assert_contains "$(log_since)" "s6-permafailon: info: PERMANENT FAILURE triggered after 10 events involving exit code 1 in the last 60 seconds" "crash loop: parked"
assert_not_contains "$(log_since)" "death_tally" "s6-permafailon found the tally"

# ---- the finish script by hand, as s6 runs it (cwd = the service dir):
# 3 and 4 arguments, and well inside s6's 5 s finish timeout.
emu_root s6-svdt-clear $D
emu_root rm -f /run/standin/exit-code
for args in "1 0 dashboard" "256 9 dashboard 4242" "127 0 dashboard"; do
    want=0
    [[ $args != 127* ]] || want=125
    now_ms
    t0=$NOW_MS
    # shellcheck disable=SC2086 # the arguments are split on purpose
    assert_rc $want emu_root sh -c 'cd "$0" && exec ./finish "$@"' $D $args
    if ((want == 0)); then
        assert_eq "" "$ASSERT_OUT" "finish $args: a restart is silent (and the emptied tally is no warning)"
    else
        assert_eq "dashboard-finish: info: the dashboard exited 127 (cannot execute its program): not restarting it" "$ASSERT_OUT" "finish $args"
    fi
    now_ms
    ((NOW_MS - t0 < 1000)) || fail "finish $args took $((NOW_MS - t0)) ms"
done
assert_not_contains "$(cat "$LOG")" "finish script lifetime reached maximum value" "no finish was ever killed"

# ---- an image without the hermes program: exit 127, parked after one try
emu_boot -o "$OV" -e HERMES_DASHBOARD=1
LOG=$EMU/svscan.log
if emu_root sh -c 'command -v hermes' >/dev/null; then
    fail "this machine has a hermes program on the container PATH; the not-found case cannot be shown"
fi
emu_root s6-svperms -G hermes -E hermes $D
log_mark
bring_up
assert_stays_parked 0 1
assert_contains "$(log_since)" "dashboard-run: fatal: unable to exec hermes: No such file or directory" "not found: the message"
assert_contains "$(log_since)" "dashboard-finish: info: the dashboard exited 127 (cannot execute its program): not restarting it" "not found: parked"
echo "dashboard done"
