#!/bin/bash
# docker stop and docker restart with a gateway that needs 5 s to shut down
# cleanly and then records its clean exit as the real one does
# (state/gateway.lifecycle.json, phase "exited"): it gets its 5 s, and the
# next boot's reconcile logs prior_exit=clean. The bounds (README, "Stopping
# the container"): isolated, the gateways go down with profile-gateways in
# s6-rc's stage 3, which has no time limit, so docker's stop timeout is the
# bound; shared, they are in root's /run/service and go down in stage 4,
# bounded by S6_KILL_GRACETIME (3000 ms by default: a 5 s gateway is
# SIGKILLed, and the next boot logs prior_exit=unclean).
# shellcheck disable=SC2016 # inner sh -c scripts expand their own variables
# shellcheck source=tests/integration/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

slow=$EMU_TMP/slow-gateway
mkdir -p "$slow/usr/bin"
cat >"$slow/usr/bin/hermes" <<'SH'
#!/bin/sh
# A gateway that takes 5 s to shut down on SIGTERM, then writes its clean
# exit into the lifecycle ledger (phase "exited") and exits 0.
case " $* " in *" gateway run "*) ;; *) exit 0 ;; esac
home=$HERMES_HOME
[ "$1" = -p ] && home=$HERMES_HOME/profiles/$2
ledger=$home/state/gateway.lifecycle.json
mkdir -p "$home/state"
printf '{"phase": "running", "pid": %s}\n' "$$" >"$ledger"
stop() {
    # One shutdown: stage 4's TERM to every process and s6-supervise's TERM
    # to its service arrive close together; a second one caught during the
    # 5 s would start the shutdown over once sleep returns.
    trap '' TERM
    kill "$sleeper" 2>/dev/null
    sleep 5
    printf '{"phase": "exited", "pid": %s, "exit_code": 0, "exit_reason": "signal"}\n' "$$" >"$ledger.tmp"
    mv -f "$ledger.tmp" "$ledger"
    exit 0
}
trap stop TERM
# (not holding the logger's pipe: s6-log would never see its end)
sleep 1000000 >/dev/null 2>&1 &
sleeper=$!
wait
SH
chmod 0755 "$slow/usr/bin/hermes"

make_volume() {
    mkdir -p "$1/home"
    printf '{"desired_state":"running"}\n' >"$1/home/gateway_state.json"
    chown -R 10000:10000 "$1"
}

ledger_phase() { sed -n 's/.*"phase": "\([a-z]*\)".*/\1/p' "$1/home/state/gateway.lifecycle.json" 2>/dev/null; }
# ledger_is VOL PHASE: read anew on every call (a wait_until polls it).
ledger_is() { [[ "$(ledger_phase "$1")" == "$2" ]]; }

# stop_and_restart TOPOLOGY WANT_PRIOR_EXIT [boot options]
stop_and_restart() {
    local topology=$1 want=$2 vol sd
    shift 2
    vol=$EMU_TMP/vol-$topology-$want
    make_volume "$vol"
    sd=/run/hermes/service
    [[ $topology == shared ]] && sd=/run/service
    emu_boot -2 -o "$HERMES_S6_DESTDIR" -o "$slow" -v "$vol" -e HERMES_HOME=/opt/data/home \
        -e "HERMES_S6_TOPOLOGY=$topology" "$@"
    assert_eq ok "$(emu_wait_stage2 10000)" "$topology: stage 2"
    wait_until 5000 emu_root s6-svstat -o up "$sd/gateway-default"
    wait_until 5000 ledger_is "$vol" running

    now_ms
    local t0=$NOW_MS took
    emu_restart 20
    now_ms
    took=$((NOW_MS - t0))
    assert_eq ok "$(emu_wait_stage2 10000)" "$topology: stage 2 after the restart"
    if [[ $want == clean ]]; then
        ((took >= 5000)) || fail "$topology: the restart took $took ms: the gateway did not get its 5 s"
        assert_not_contains "$(cat "$EMU/svscan.log")" "sending all processes the KILL signal" "$topology: nothing SIGKILLed"
    else
        assert_contains "$(cat "$EMU/svscan.log")" "sending all processes the KILL signal" "$topology: SIGKILL after the grace time"
    fi
    assert_contains "$(tail -n 1 "$vol/home/logs/container-boot.log")" "profile=default prior_state=running action=started prior_exit=$want" \
        "$topology: the next boot's reconcile"
    emu_down "$EMU"
}

stop_and_restart isolated clean
stop_and_restart shared clean -e S6_KILL_GRACETIME=8000
stop_and_restart shared unclean
