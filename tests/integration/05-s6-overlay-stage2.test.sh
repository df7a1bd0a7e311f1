#!/usr/bin/env bash
# Self-test of the emulated s6-overlay boot (hermes-emu boot -2, rc.init and
# rc.shutdown in tests/container/s6-overlay/): each behaviour of the real
# 3.2.3.x boot that the tools depend on (doc/design.md#s6-overlay-boot).
# shellcheck disable=SC2016 # single-quoted scripts run inside the container
# shellcheck source=tests/integration/lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

# An image with two longruns (`second` depends on `first`, which becomes
# ready 300 ms after it starts), a cont-init probe and a legacy service.
img=$EMU_TMP/image
rcd=$img/etc/s6-overlay/s6-rc.d
mkdir -p "$rcd/first/dependencies.d" "$rcd/second/dependencies.d" "$img/etc/cont-init.d" \
    "$img/etc/services.d/legacy" "$img/etc/s6-overlay/user-bundles.d/user/contents.d"
for n in first second; do
    echo longrun >"$rcd/$n/type"
    touch "$rcd/$n/dependencies.d/base"
done
touch "$rcd/second/dependencies.d/first"
echo 3 >"$rcd/first/notification-fd"
printf '#!/bin/sh\necho "$PATH" >/run/run-path\nsleep 0.3\ntouch /run/first-ready\necho >&3\nexec sleep 1000000\n' >"$rcd/first/run"
printf '#!/bin/sh\nexec sleep 1000000\n' >"$rcd/second/run"
printf '#!/bin/sh\nexec sleep 1000000\n' >"$img/etc/services.d/legacy/run"
printf '#!/bin/sh\n{ env | sort; echo "cwd=$(pwd) umask=$(umask) stdin=$(readlink /proc/self/fd/0) uid=$(id -u)"; } >/run/probe\n' \
    >"$img/etc/cont-init.d/01-probe"
chmod 0755 "$rcd"/*/run "$img/etc/services.d/legacy/run" "$img/etc/cont-init.d/01-probe"
touch "$img/etc/s6-overlay/user-bundles.d/user/contents.d/second"

# A base layer as every image that had s6-overlay <= 3.2.3.0 has it.
old_base=$EMU_TMP/old-base
mkdir -p "$old_base/etc/s6-overlay/s6-rc.d/user/contents.d"
echo bundle >"$old_base/etc/s6-overlay/s6-rc.d/user/type"
touch "$old_base/etc/s6-overlay/s6-rc.d/user/contents.d/first"

log() { cat "$EMU/svscan.log"; }

# wait_halted TIMEOUT_MS: the container's PID 1 exits by itself.
wait_halted() {
    local pid1 deadline
    pid1=$(<"$EMU/pid")
    now_ms
    deadline=$((NOW_MS + $1))
    while kill -0 "$pid1" 2>/dev/null; do
        now_ms
        ((NOW_MS < deadline)) || fail "the container did not halt within $1 ms"
        sleep 0.02
    done
}

readonly OVERLAY_PATH=/command:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
readonly DEBIAN_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# ---- 3.2.3.2: cont-init as s6-overlay runs it, the bundle in order, readiness awaited
emu_boot -2 -o "$img" -e HERMES_TEST_VAR=hello -- sh -c 'test -e /run/first-ready && echo CMD-AFTER-READY; exec sleep 1000000'
assert_eq ok "$(emu_wait_stage2 10000)" "stage 2 verdict"
wait_until 5000 grep -q CMD-AFTER-READY "$EMU/svscan.log"
probe=$(emu_root cat /run/probe)
assert_contains "$probe" "PATH=/command:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" "cont-init: s6-overlay's PATH"
assert_contains "$probe" "RC_NAME=legacy-cont-init" "cont-init: RC_NAME"
assert_not_contains "$probe" "HERMES_TEST_VAR" "cont-init: no container variable without with-contenv"
assert_contains "$probe" "cwd=/run/s6-rc:s6-rc-init:emu/servicedirs/s6rc-oneshot-runner umask=0022 stdin=/dev/null uid=0" "cont-init: cwd, umask, stdin, root"
out=$(log)
assert_contains "$out" "$(printf 's6-rc: info: service first successfully started\ns6-rc: info: service second: starting')" "dependency order"
assert_contains "$out" "service legacy-services successfully started" "legacy-services after the bundle"
wait_until 5000 emu_root s6-svok /run/service/legacy
assert_eq "true true" "$(emu_root s6-svstat -o up,ready /run/s6-rc/servicedirs/first)" "first up and ready"
assert_eq "$OVERLAY_PATH" "$(emu_root sh -c 'tr "\0" "\n" </proc/1/environ | sed -n "s/^PATH=//p"')" "PID 1's PATH"
assert_eq "$OVERLAY_PATH" "$(emu_root cat /run/run-path)" "a run script's PATH"
# docker exec: the image's ENV PATH (Debian's by default), without /command;
# the s6-overlay symlinks tarballs (there by default) put s6-svstat in /usr/bin.
assert_eq "$DEBIAN_PATH" "$(emu_root sh -c 'echo "$PATH"')" "docker exec's PATH"
assert_eq "$DEBIAN_PATH" "$(emu_user sh -c 'echo "$PATH"')" "docker exec -u hermes's PATH"
assert_eq "/usr/bin/s6-svstat /usr/bin/printcontenv" "$(emu_user sh -c 'command -v s6-svstat; command -v printcontenv' | paste -sd' ')" "the symlinks tarballs' tools"
# The whole environment of /init, stored.
assert_eq "HERMES_TEST_VAR HOME HOSTNAME PATH PWD" "$(emu_root ls /run/s6/container_environment | tr '\n' ' ' | sed 's/ $//')" "container_environment"
assert_eq "/root" "$(emu_root cat /run/s6/container_environment/HOME)" "HOME stored"
assert_eq "755 root 600 600" "$(emu_root stat -c '%a %U' /run/service/.s6-svscan) $(emu_root stat -c %a /run/service/.s6-svscan/control /run/service/.s6-svscan/lock | tr '\n' ' ' | sed 's/ $//')" ".s6-svscan modes"
assert_rc 0 emu_root test -x /run/service/.s6-svscan/SIGTERM
assert_rc 0 emu_root test -x /run/service/.s6-svscan/finish

# ---- docker stop: reverse dependency order, then the kill grace time
assert_rc 0 emu_stop 10
assert_contains "$ASSERT_OUT" "PID 1 exited after" "stop ends the container"
out=$(log)
assert_contains "$out" "$(printf 'rc.shutdown: info: +')" "stage 3 ran"
[[ $out =~ legacy-services\ down.*second\ down.*first\ down ]] || fail "$(printf 'down order wrong:\n%s' "$out")"
assert_contains "$out" "all processes exited" "nothing left to kill"

# ---- an image without s6-overlay's symlinks tarballs: the s6 tools are
# found through /command only, which docker exec has only when the image's
# ENV PATH has it (-P); stages and run scripts always have it
emu_boot -2 -N -o "$img"
assert_eq ok "$(emu_wait_stage2 10000)" "no symlinks: the boot does not need them"
assert_eq "$OVERLAY_PATH" "$(emu_root cat /run/run-path)" "no symlinks: the run script's PATH"
assert_rc 127 emu_user sh -c 's6-svstat /run/service/first'
assert_contains "$ASSERT_OUT" "s6-svstat: not found" "no symlinks, no /command on PATH: docker exec -u hermes C s6-svstat"
assert_rc 127 emu_root sh -c 's6-svok /run/service/first'
assert_rc 127 emu_root sh -c 'printcontenv HOME'
assert_eq "true" "$(emu_root /command/s6-svstat -o up /run/service/first)" "/command/s6-svstat by its path"
emu_down "$EMU"
emu_boot -2 -N -P "$OVERLAY_PATH" -o "$img"
assert_eq ok "$(emu_wait_stage2 10000)" "no symlinks, /command on the image's PATH"
assert_eq "$OVERLAY_PATH" "$(emu_user sh -c 'echo "$PATH"')" "-P: the image's PATH in docker exec"
assert_eq "/command/s6-svstat" "$(emu_user sh -c 'command -v s6-svstat')" "s6-svstat through /command"
assert_eq "true" "$(emu_root s6-svstat -o up /run/service/first)" "s6-svstat by name"
emu_down "$EMU"

# ---- the membership directory each s6-overlay reads
emu_boot -2 -o "$img" -o "$old_base"
assert_eq ok "$(emu_wait_stage2 10000)" "3.2.3.2 on an old base"
out=$(log)
assert_contains "$out" "s6-rc.d/user is deprecated" "3.2.3.2 warns about s6-rc.d/user"
assert_contains "$out" "service first successfully started" "3.2.3.2 reads s6-rc.d/user/contents.d"
assert_not_contains "$out" "service second" "3.2.3.2 ignores user-bundles.d when s6-rc.d/user exists"
emu_down "$EMU"

emu_boot -2 -O 3.2.3.0 -o "$img"
assert_eq ok "$(emu_wait_stage2 10000)" "3.2.3.0"
assert_not_contains "$(log)" "service second" "3.2.3.0 never reads user-bundles.d"
assert_eq "s6-overlay-3.2.3.0" "$(emu_root readlink /package/admin/s6-overlay)" "the version a tool can see"
emu_down "$EMU"

# ---- a failed start: legacy-services never runs; S6_BEHAVIOUR_IF_STAGE2_FAILS
bad=$EMU_TMP/bad
mkdir -p "$bad/etc/s6-overlay/s6-rc.d/first"
printf '#!/bin/sh\nexit 0\n' >"$bad/etc/s6-overlay/s6-rc.d/first/run"
printf '#!/bin/sh\nexit 125\n' >"$bad/etc/s6-overlay/s6-rc.d/first/finish"
chmod 0755 "$bad/etc/s6-overlay/s6-rc.d/first"/*
emu_boot -2 -o "$bad" -o "$img" -- sh -c 'echo CMD-RAN; exec sleep 1000000'
assert_eq failed "$(emu_wait_stage2 10000)" "a longrun that dies before readiness with finish 125 fails the start"
wait_until 5000 grep -q CMD-RAN "$EMU/svscan.log"
out=$(log)
assert_contains "$out" "unable to start service first" "failed start reported"
assert_contains "$out" "unable to start service second: a dependency failed" "its dependant too"
assert_not_contains "$out" "legacy-services successfully started" "no legacy-services"
assert_rc 1 emu_root test -e /run/service/legacy
emu_down "$EMU"

emu_boot -2 -o "$bad" -o "$img" -e S6_BEHAVIOUR_IF_STAGE2_FAILS=2 -- echo CMD-RAN
wait_halted 10000
out=$(log)
assert_contains "$out" "rc.init: fatal: stopping the container." "behaviour 2 halts"
assert_contains "$out" "the container exits with code 1" "exit code 1"
assert_not_contains "$out" "CMD-RAN" "no CMD after a halt"
emu_down "$EMU"

# ---- S6_CMD_WAIT_FOR_SERVICES_MAXTIME bounds the whole transition (s6-rc -t),
# not each service: two longruns ready 0.9 s after they start, bound 1.5 s
slow=$EMU_TMP/slow
srcd=$slow/etc/s6-overlay/s6-rc.d
mkdir -p "$srcd/slowa/dependencies.d" "$srcd/slowb/dependencies.d" \
    "$slow/etc/s6-overlay/user-bundles.d/user/contents.d" "$slow/etc/services.d/legacy"
for n in slowa slowb; do
    echo longrun >"$srcd/$n/type"
    echo 3 >"$srcd/$n/notification-fd"
    touch "$srcd/$n/dependencies.d/base" "$slow/etc/s6-overlay/user-bundles.d/user/contents.d/$n"
    printf '#!/bin/sh\nsleep 0.9\necho >&3\nexec sleep 1000000\n' >"$srcd/$n/run"
done
printf '#!/bin/sh\nexec sleep 1000000\n' >"$slow/etc/services.d/legacy/run"
chmod 0755 "$srcd"/*/run "$slow/etc/services.d/legacy/run"
# independent: s6-rc starts them in parallel, both ready well within 1.5 s
emu_boot -2 -o "$slow" -e S6_CMD_WAIT_FOR_SERVICES_MAXTIME=1500
assert_eq ok "$(emu_wait_stage2 10000)" "two independent 0.9 s longruns within S6_CMD_WAIT_FOR_SERVICES_MAXTIME=1500"
emu_down "$EMU"
# slowb after slowa: 1.8 s in all, past the bound (though each takes less)
touch "$srcd/slowb/dependencies.d/slowa"
emu_boot -2 -o "$slow" -e S6_CMD_WAIT_FOR_SERVICES_MAXTIME=1500 -- sh -c 'echo CMD-RAN; exec sleep 1000000'
assert_eq failed "$(emu_wait_stage2 10000)" "S6_CMD_WAIT_FOR_SERVICES_MAXTIME bounds the whole user bundle"
wait_until 5000 grep -q CMD-RAN "$EMU/svscan.log"
out=$(log)
assert_contains "$out" "s6-rc: fatal: timed out" "s6-rc times out"
assert_contains "$out" "service slowb: starting" "slowb was starting at the deadline"
assert_not_contains "$out" "legacy-services successfully started" "no legacy-services after a time-out"
assert_rc 1 emu_root test -e /run/service/legacy
# s6-rc kills nothing: the start in flight completes, unrecorded
wait_until 5000 emu_root sh -c '/command/s6-svstat -o ready /run/s6-rc/servicedirs/slowb | grep -qx true'
assert_eq slowa "$(emu_root cat /run/s6/.emu-started)" "only what was up at the deadline is recorded"
emu_down "$EMU"
emu_boot -2 -o "$slow" -e S6_CMD_WAIT_FOR_SERVICES_MAXTIME=1500 -e S6_BEHAVIOUR_IF_STAGE2_FAILS=2 -- echo CMD-RAN
wait_halted 10000
out=$(log)
assert_contains "$out" "s6-rc: fatal: timed out" "timed out, behaviour 2"
assert_contains "$out" "the container exits with code 2" "behaviour 2 halts with s6-rc's exit code"
assert_not_contains "$out" "CMD-RAN" "no CMD after a halt"
emu_down "$EMU"

# ---- a process that ignores SIGTERM is killed after S6_KILL_GRACETIME
emu_boot -2 -o "$img" -e S6_KILL_GRACETIME=400 -- sh -c 'trap "" TERM; while :; do sleep 0.05; done'
assert_eq ok "$(emu_wait_stage2 10000)" "boot"
assert_rc 0 emu_stop 10
assert_contains "$(log)" "sending all processes the KILL signal (S6_KILL_GRACETIME=400 ms over)" "grace time, then SIGKILL"

# ---- docker restart: same options, same volume, a fresh /run
vol=$EMU_TMP/vol
mkdir -p "$vol"
emu_boot -2 -o "$img" -v "$vol"
assert_eq ok "$(emu_wait_stage2 10000)" "first boot"
emu_root touch /opt/data/kept /run/not-kept
emu_restart 10
assert_eq ok "$(emu_wait_stage2 10000)" "boot after restart"
assert_rc 0 emu_root test -e /opt/data/kept
assert_rc 1 emu_root test -e /run/not-kept
assert_eq 2 "$(grep -c 'service legacy-services successfully started' "$EMU/svscan.log")" "two boots in one log"
emu_down "$EMU"

# ---- a non-root container (--user 10000), /run on the overlay root
emu_boot -2 -u 10000 -r overlay -o "$img"
assert_eq ok "$(emu_wait_stage2 10000)" "non-root boot"
assert_eq 10000 "$(emu_root awk '/^Uid:/ { print $2 }' /proc/1/status)" "PID 1 runs as 10000"
assert_eq "10000 10000" "$(emu_root stat -c %u /run/service /run/service/.s6-svscan/control | tr '\n' ' ' | sed 's/ $//')" "the tree is the user's"
assert_contains "$(emu_root cat /run/probe)" "uid=10000" "cont-init runs as the container's user"
assert_eq overlayfs "$(emu_root stat -f -c %T /run)" "/run is on the overlay root"
# Layers on two filesystems without xino: a non-directory reports the st_dev
# of its real filesystem, a directory the overlay's.
dev_dir=$(emu_root stat -c %d /run/s6) dev_file=$(emu_root stat -c %d /run/s6/workdir)
[[ $dev_dir != "$dev_file" ]] || fail "/run/s6 and /run/s6/workdir share st_dev $dev_dir: not the docker-run overlay"
emu_down "$EMU"

# ---- docker run --read-only -e S6_READ_ONLY_ROOT=1 (-R): the image is
# read-only (/tmp too), /run is a tmpfs, the volume is writable
rovol=$EMU_TMP/rovol
mkdir -p "$rovol"
emu_boot -2 -R -o "$img" -v "$rovol"
assert_eq ok "$(emu_wait_stage2 10000)" "read-only root: boot"
assert_rc 1 emu_root touch /etc/probe
assert_contains "$ASSERT_OUT" "Read-only file system" "the image's root is read-only"
assert_rc 1 emu_root touch /tmp/probe
assert_eq tmpfs "$(emu_root stat -f -c %T /run)" "/run is a tmpfs"
assert_rc 0 emu_root touch /run/probe
assert_rc 0 emu_user touch /opt/data/probe
assert_eq 1 "$(emu_root cat /run/s6/container_environment/S6_READ_ONLY_ROOT)" "S6_READ_ONLY_ROOT stored"
emu_down "$EMU"
