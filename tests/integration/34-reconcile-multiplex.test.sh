#!/bin/bash
# hermes-reconcile's boot rules against real s6 (the isolated topology's
# scanner): HERMES_S6_BOOT_POLICY=multiplex folds named profiles into the
# root slot (the three cases of issue 13, the notice line, the log field,
# -j), per-profile reads multiplex_profiles from config.yaml with
# GATEWAY_MULTIPLEX_PROFILES overriding only as a boolean word, bad
# config.yaml files are warnings, an unknown policy is exit 100, and a
# stale undotted gateway-<p>.tmp leaves the scan.
# shellcheck disable=SC2016 # single-quoted scripts run inside the container
# shellcheck source=tests/integration/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/reconcile.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/reconcile.sh"

S=/run/hermes/service
NOTICE_TAIL="asked to autostart; one gateway per container serves every non-standalone profile, so the ROOT slot (gateway-default) was started instead and multiplexes them."

boot() {
    emu_boot -o "$HERMES_S6_DESTDIR" -o "$(rec_overlay)" -o "$(emu_standin_overlay)" -e HERMES_HOME=/opt/data
    emu_root install -d -m 1777 /run/standin
    emu_root install -d -o hermes -g hermes -m 0755 $S
}
# state P VALUE: P's gateway_state.json says desired_state VALUE ("-": no file).
state() {
    local f=/opt/data/profiles/$1/gateway_state.json
    [[ $1 == default ]] && f=/opt/data/gateway_state.json
    if [[ $2 == - ]]; then
        emu_user rm -f "$f"
    else
        emu_user sh -c "printf '{\"desired_state\": \"%s\"}\n' '$2' >'$f'"
    fi
}
profile() { emu_user sh -ec "mkdir -p /opt/data/profiles/$1 && echo soul >/opt/data/profiles/$1/SOUL.md"; }
reconcile() { emu_user env "$@" /usr/bin/hermes-reconcile; }
# up_state DIR: s6-svstat's up,wantedup,normallyup for the slot, as hermes.
up_state() { emu_user s6-svstat -o up,wantedup,normallyup "$1"; }

# ---- root stopped + solo (standalone) running + coder running
boot
profile coder
profile solo
profile writer
state default stopped
state coder running
state solo running
state writer stopped
emu_user sh -ec 'printf "gateway:\n  standalone: true\n" >/opt/data/profiles/solo/config.yaml'
assert_rc 0 reconcile HERMES_S6_BOOT_POLICY=multiplex
assert_eq "reconcile: profile gateway(s) coder $NOTICE_TAIL
reconcile: profile=default prior_state=stopped action=started
reconcile: profile=coder prior_state=running action=registered
reconcile: profile=solo prior_state=running action=started
reconcile: profile=writer prior_state=stopped action=registered" "$ASSERT_OUT" "the notice line, then one line per slot"
rec_user_svscan
rec_gateway_up $S/gateway-default "gateway run --replace"
rec_gateway_up $S/gateway-solo "-p solo gateway run --replace"
rec_down_normally_down $S/gateway-coder
rec_down_normally_down $S/gateway-writer
log=$(emu_root cat /opt/data/logs/container-boot.log)
assert_contains "$log" " profile=default prior_state=stopped action=started prior_exit=unknown folded_into_root=False" "log: root"
assert_contains "$log" " profile=coder prior_state=running action=registered prior_exit=unknown folded_into_root=True" "log: coder folded"
assert_contains "$log" " profile=solo prior_state=running action=started prior_exit=unknown folded_into_root=False" "log: solo"
json=$(emu_user env HERMES_S6_BOOT_POLICY=multiplex /usr/bin/hermes-reconcile -n -j 2>/dev/null)
assert_eq "default:started:False:unknown coder:registered:True:unknown solo:started:False:unknown writer:registered:False:unknown" \
    "$(python3 -c 'import json, sys
print(" ".join("%s:%s:%s:%s" % (e["profile"], e["action"], e["folded_into_root"], e["prior_exit"]) for e in json.loads(sys.argv[1])["slots"]))' "$json")" \
    "-j: folded_into_root and prior_exit"
emu_down "$EMU"

# ---- root running + coder running
boot
profile coder
state default running
state coder running
assert_rc 0 reconcile HERMES_S6_BOOT_POLICY=multiplex
assert_contains "$ASSERT_OUT" "reconcile: profile gateway(s) coder $NOTICE_TAIL" "notice"
rec_user_svscan
rec_gateway_up $S/gateway-default "gateway run --replace"
rec_down_normally_down $S/gateway-coder
assert_eq 0 "$(rec_calls 'argv=-p coder gateway run')" "no second gateway beside the multiplexer"
emu_down "$EMU"

# ---- no root state + coder desired_state running
boot
profile coder
state coder running
assert_rc 0 reconcile HERMES_S6_BOOT_POLICY=multiplex
assert_contains "$ASSERT_OUT" "reconcile: profile=default prior_state=None action=started" "the root starts for coder"
rec_user_svscan
rec_gateway_up $S/gateway-default "gateway run --replace"
rec_down_normally_down $S/gateway-coder
assert_contains "$(emu_root cat /opt/data/logs/container-boot.log)" " profile=coder prior_state=running action=registered prior_exit=unknown folded_into_root=True" "folded"

# ---- per-profile: multiplex_profiles from config.yaml, the environment as a boolean word only
coder_action() { emu_user env "$@" /usr/bin/hermes-reconcile -n 2>&1 | sed -n 's/^reconcile: profile=coder .* action=//p'; }
emu_user sh -ec 'echo "multiplex_profiles: true" >/opt/data/config.yaml'
assert_eq registered "$(coder_action)" "config true, no env"
assert_eq started "$(coder_action GATEWAY_MULTIPLEX_PROFILES=false)" "env false beats config true"
assert_eq registered "$(coder_action GATEWAY_MULTIPLEX_PROFILES=maybe)" "env maybe: config true"
emu_user sh -ec 'printf "gateway:\n  multiplex_profiles: true\n" >/opt/data/config.yaml'
assert_eq registered "$(coder_action)" "under gateway:"
# Bad files: a warning each, counted as absent (coder starts again); a FIFO never blocks.
emu_user sh -ec 'rm /opt/data/config.yaml; mkfifo /opt/data/config.yaml'
assert_rc 0 timeout 10 "$HERMES_EMU" user "$EMU" /usr/bin/hermes-reconcile -n
assert_contains "$ASSERT_OUT" "hermes-reconcile: warning: unable to read /opt/data/config.yaml: is a FIFO" "FIFO"
assert_contains "$ASSERT_OUT" "reconcile: profile=coder prior_state=running action=started" "FIFO: absent"
emu_user sh -ec 'rm /opt/data/config.yaml; echo "multiplex_profiles: true" >/tmp/real.yaml; ln -s /tmp/real.yaml /opt/data/config.yaml'
assert_rc 0 emu_user /usr/bin/hermes-reconcile -n
assert_contains "$ASSERT_OUT" "config.yaml: is a symlink" "symlink"
assert_contains "$ASSERT_OUT" "reconcile: profile=coder prior_state=running action=started" "symlink: absent"
emu_user sh -ec 'rm /opt/data/config.yaml; { echo "multiplex_profiles: true"; head -c 2097152 /dev/zero | tr "\0" "#"; } >/opt/data/config.yaml'
assert_rc 0 emu_user /usr/bin/hermes-reconcile -n
assert_contains "$ASSERT_OUT" "/opt/data/config.yaml: " "2 MiB"
assert_contains "$ASSERT_OUT" "reconcile: profile=coder prior_state=running action=started" "2 MiB: absent"
emu_user sh -ec 'printf "multiplex_profiles: [true\n" >/opt/data/config.yaml'
assert_rc 0 emu_user /usr/bin/hermes-reconcile -n
assert_contains "$ASSERT_OUT" "unable to parse /opt/data/config.yaml: not valid YAML" "invalid YAML"
assert_contains "$ASSERT_OUT" "reconcile: profile=coder prior_state=running action=started" "invalid: absent"

# ---- an unknown policy: exit 100, nothing touched
before=$(emu_root sh -c "ls -A $S; cat /opt/data/logs/container-boot.log" | sha256sum)
assert_rc 100 reconcile HERMES_S6_BOOT_POLICY=multiplexed
assert_eq "hermes-reconcile: fatal: unable to use HERMES_S6_BOOT_POLICY=multiplexed: HERMES_S6_BOOT_POLICY must be per-profile or multiplex" \
    "$ASSERT_OUT" "unknown policy"
assert_eq "$before" "$(emu_root sh -c "ls -A $S; cat /opt/data/logs/container-boot.log" | sha256sum)" "nothing touched"

# ---- a stale undotted gateway-<p>.tmp is taken out of the scan and removed
emu_user sh -ec "mkdir $S/gateway-coder.tmp; printf '#!/bin/sh\nexec sleep 100000\n' >$S/gateway-coder.tmp/run; chmod 755 $S/gateway-coder.tmp/run"
emu_user s6-svscanctl -a $S
wait_until 5000 emu_user s6-svok $S/gateway-coder.tmp
emu_user rm -f /opt/data/config.yaml
assert_rc 0 reconcile HERMES_S6_BOOT_POLICY=multiplex
assert_contains "$ASSERT_OUT" "hermes-reconcile: warning: removed $S/gateway-coder.tmp: a stale staging directory s6-svscan would supervise as a service" "warned"
assert_eq "" "$(emu_root ls -A $S | grep 'coder\.tmp' || true)" "gone from the scan directory"
# Its supervisor was told to bring it down and exit: the process is gone.
sleeping() { emu_root sh -c 'for p in /proc/[0-9]*; do tr "\0" " " <"$p/cmdline" 2>/dev/null; echo; done' | grep -cx 'sleep 100000 ' || true; }
no_sleeper() { [[ $(sleeping) == 0 ]]; }
wait_until 5000 no_sleeper
