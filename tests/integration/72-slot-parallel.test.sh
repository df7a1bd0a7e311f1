#!/bin/bash
# 20 profiles registered, then unregistered, in parallel, twice over, in
# the booted image, both topologies (half registered up, so half of the
# unregisters stop a running gateway): every command succeeds, each
# register returns supervised, and the end state is the start state: no
# leftover directory, no stray supervisor, no dangling entry. Then, next
# to 400 idle services, ten registers racing ten unregisters of other
# profiles (MIXED_ROUNDS times, default 3): every registered slot is
# supervised on return.
# shellcheck disable=SC2016 # single-quoted scripts run inside the container
# shellcheck source=tests/integration/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/slot.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/slot.sh"

# all CMD: hermes-slot CMD on par0..par19 at once, as hermes; each
# failure is printed as "FAIL NAME RC: OUTPUT".
all() {
    emu_user sh -c '
        cmd=$1
        i=0
        while [ $i -lt 20 ]; do
            opt=
            if [ "$cmd" = register ] && [ $((i % 2)) = 0 ]; then opt=-d; fi
            (out=$(/usr/bin/hermes-slot $cmd $opt par$i 2>&1) || echo "FAIL par$i $?: $out") &
            i=$((i + 1))
        done
        wait' sh "$1"
}

# mixed: par0..par9 unregistered while par10..par19 are registered, all
# at once: each unregister renames a live slot out of the scan while the
# others' rescans run (s6-svscan 2.12+ abandons a scan whose entry went
# away, and never starts what that scan saw first).
mixed() {
    emu_user sh -c '
        i=0
        while [ $i -lt 20 ]; do
            cmd=unregister
            [ $i -ge 10 ] && cmd=register
            (out=$(/usr/bin/hermes-slot $cmd par$i 2>&1) || echo "FAIL $cmd par$i $?: $out") &
            i=$((i + 1))
        done
        wait'
}

for topology in isolated shared; do
    slot_boot "$topology"
    start=$(emu_root ls -A "$SD")
    for round in 1 2; do
        assert_eq "" "$(all register)" "$topology round $round: every register succeeded"
        for i in $(seq 0 19); do
            emu_user s6-svok "$SD/gateway-par$i" || fail "$topology round $round: par$i not supervised on return"
            emu_user s6-svok "$SD/gateway-par$i/log" || fail "$topology round $round: par$i's logger not supervised on return"
        done
        assert_eq 20 "$(slot list | grep -c '^par')" "$topology round $round: 20 listed"
        assert_eq 40 "$(slot_supervisors '^gateway-par' | wc -l)" "$topology round $round: 40 supervisors"
        # The odd ones were registered up.
        wait_until 8000 sh -c "[ \"\$(\"$HERMES_EMU\" user $EMU s6-svstat -o up $SD/gateway-par19)\" = true ]"

        assert_eq "" "$(all unregister)" "$topology round $round: every unregister succeeded"
        assert_eq "$start" "$(emu_root ls -A "$SD")" "$topology round $round: the scan directory is as before"
        assert_eq "" "$(slot_supervisors '^gateway-par')" "$topology round $round: no stray supervisor"
        assert_eq "" "$(emu_root find "$SD" -xtype l)" "$topology round $round: no dangling entry"
        assert_eq "" "$(emu_root sh -c 'pgrep -f "gateway run" | while read -r p; do tr "\0" " " </proc/$p/cmdline; echo; done' | grep -- '-p par' || true)" \
            "$topology round $round: no gateway left running"
    done
    # Registers racing unregisters of other profiles: every registered
    # slot is supervised on return. 400 idle services make each scan long
    # enough (1,000 stats) for the renames to land inside one.
    emu_root sh -c '
        i=0
        while [ $i -lt 400 ]; do
            d=$1/ballast$i
            mkdir "$d" && printf "#!/bin/sh\nexec sleep 100000\n" >"$d/run" && chmod 0755 "$d/run" && : >"$d/down"
            i=$((i + 1))
        done
        chown -R hermes:hermes "$1"/ballast*' sh "$SD"
    emu_root s6-svscanctl -a "$SD"
    wait_until 30000 emu_root s6-svok "$SD/ballast399"
    for round in $(seq "${MIXED_ROUNDS:-3}"); do
        for i in $(seq 0 9); do slot register -d "par$i" >/dev/null; done
        assert_eq "" "$(mixed)" "$topology mixed round $round: every command succeeded"
        for i in $(seq 10 19); do
            emu_user s6-svok "$SD/gateway-par$i" || fail "$topology mixed round $round: par$i not supervised on return"
            emu_user s6-svok "$SD/gateway-par$i/log" || fail "$topology mixed round $round: par$i's logger not supervised on return"
        done
        for i in $(seq 10 19); do slot unregister "par$i" >/dev/null; done
        assert_eq "$start" "$(emu_root ls -A "$SD" | grep -v '^ballast')" "$topology mixed round $round: the scan directory is as before"
    done
    emu_root sh -c 'mkdir "$1/.ballast" && mv "$1"/ballast* "$1/.ballast/"' sh "$SD"
    emu_root s6-svscanctl -an "$SD"
    slot_agree default "$topology: gateway-default untouched"
    emu_down "$EMU"
done
