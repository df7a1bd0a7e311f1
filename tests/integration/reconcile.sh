#!/usr/bin/env bash
# (sourced, not run)
# shellcheck disable=SC2016 # single-quoted scripts run inside the container
# reconcile.sh: helpers for the 3x-reconcile*.test.sh tests, sourced after
# lib.sh. All act on container $EMU.
#
#   rec_overlay                 print an overlay dir whose /usr/bin/hermes
#                               prints `hello from hermes ARGS` on stdout,
#                               then runs the stand-in (so a gateway's
#                               log/ gets a line); put it before the
#                               stand-in's overlay
#   rec_profiles                as hermes: the root profile (running) and
#                               profiles coder (running), writer (stopped),
#                               idle (no state), broken (startup_failed),
#                               crashy (starting), notes/ (no SOUL.md)
#   rec_user_svscan             as root: supervise an s6-svscan running as
#                               hermes on /run/hermes/service (the isolated
#                               topology's scanner), wait until it listens
#   rec_calls PATTERN           print the number of stand-in calls whose
#                               line matches the extended regex PATTERN
#   rec_gateway_up DIR ARGV     the slot DIR is up, as seen by hermes, and
#                               its pid is a stand-in call by uid 10000
#                               with HOME and cwd /opt/data and that argv
#   rec_down_normally_down DIR  as hermes: down, not wanted up, and has a
#                               down file (normally down)
#   rec_finish_semantics SCANDIR
#                               run exits 0 and 78: parked (finish 125,
#                               never restarted); run exits 1: restarted
#                               (uses the slots idle, broken, crashy)

rec_overlay() {
    local d=$EMU_TMP/talking-hermes
    if [[ ! -x $d/usr/bin/hermes ]]; then
        install -D -m 0755 -- "$HERMES_STANDIN" "$d/usr/lib/hermes-standin"
        install -d "$d/usr/bin"
        printf '%s\n' '#!/bin/sh' 'echo "hello from hermes $*"' 'exec /usr/lib/hermes-standin "$@"' >"$d/usr/bin/hermes"
        chmod 0755 "$d/usr/bin/hermes"
    fi
    printf '%s\n' "$d"
}

rec_profiles() {
    emu_user sh -ec '
        cd /opt/data
        state() { printf "{\"timestamp\": 1234567890, \"gateway_state\": \"%s\"}\n" "$2" >"$1/gateway_state.json"; }
        state . running
        for p in coder writer idle broken crashy notes; do mkdir -p "profiles/$p"; done
        for p in coder writer idle broken crashy; do echo "a soul" >"profiles/$p/SOUL.md"; done
        state profiles/coder running
        state profiles/writer stopped
        state profiles/broken startup_failed
        state profiles/crashy starting
    '
}

rec_user_svscan() {
    # The image's profile-gateways longrun, brought up as s6-rc does.
    emu_root sh -ec '
        install -d -o hermes -g hermes -m 0755 /run/hermes/service
        d=/run/service/profile-gateways
        rm -f "$d/down"
        s6-svc -u "$d"
    '
    wait_until 5000 emu_user test -p /run/hermes/service/.s6-svscan/control
    wait_until 5000 emu_user s6-svscanctl -a /run/hermes/service
}

rec_calls() {
    local n
    n=$(emu_root sh -c 'cat /run/standin/calls 2>/dev/null' | grep -cE -- "$1") || true
    printf '%s\n' "${n:-0}"
}

# _rec_pid_has_call DIR ARGV: the slot's pid made a stand-in call with ARGV.
_rec_pid_has_call() {
    local pid
    pid=$(emu_user s6-svstat -o pid "$1") || return 1
    [[ $pid != -1 && $pid != 0 ]] || return 1
    emu_root grep -qxF -- "pid=$pid uid=10000 gid=10000 home=/opt/data cwd=/opt/data argv=$2" /run/standin/calls
}

rec_gateway_up() {
    wait_until 8000 _rec_pid_has_call "$1" "$2"
    assert_eq "true true" "$(emu_user s6-svstat -o up,wantedup "$1")" "$1 up, as hermes sees it"
}

rec_down_normally_down() {
    assert_eq "false false false" "$(emu_user s6-svstat -o up,wantedup,normallyup "$1")" "$1: down, not wanted up, normally down"
    assert_eq yes "$(emu_user sh -c "test -f '$1/down' && echo yes")" "$1/down"
}

# _rec_calls_at_least PATTERN N: at least N stand-in calls match PATTERN.
_rec_calls_at_least() { (($(rec_calls "$1") >= $2)); }

# _rec_wanted DIR WORD: s6-svstat -o wantedup says WORD.
_rec_wanted() { [[ $(emu_user s6-svstat -o wantedup "$1") == "$2" ]]; }

rec_finish_semantics() {
    local sd=$1 p code n
    for p in idle:0 broken:78; do
        code=${p#*:}
        p=${p%:*}
        emu_root sh -c "echo $code >/run/standin/exit-code"
        assert_rc 0 emu_user s6-svc -u "$sd/gateway-$p"
        # finish exits 125: s6-supervise clears "wanted up" and never restarts.
        wait_until 5000 _rec_wanted "$sd/gateway-$p" false
        sleep 2.2
        n=$(rec_calls "argv=-p $p gateway run --replace$")
        assert_eq 1 "$n" "run exiting $code ran once and was not restarted"
        assert_eq "false false" "$(emu_user s6-svstat -o up,wantedup "$sd/gateway-$p")" "gateway-$p parked after exit $code"
    done
    emu_root sh -c 'echo 1 >/run/standin/exit-code'
    assert_rc 0 emu_user s6-svc -u "$sd/gateway-crashy"
    # finish exits 0: restarted (s6-supervise waits 1 s between starts).
    wait_until 8000 _rec_calls_at_least 'argv=-p crashy gateway run --replace$' 3
    assert_eq true "$(emu_user s6-svstat -o wantedup "$sd/gateway-crashy")" "run exiting 1 stays wanted up"
    assert_rc 0 emu_user s6-svc -d "$sd/gateway-crashy"
    emu_root rm -f /run/standin/exit-code
}
