#!/usr/bin/env bash
# Self-test of the harness: the emulated container looks like an s6-overlay
# v3 container (as far as the hermes-s6 tools care) and leaves nothing behind.
# shellcheck disable=SC2016 # single-quoted scripts run inside the container
# shellcheck source=tests/integration/lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

mounts_before=$(</proc/self/mountinfo)
passwd_before=$(sha256sum /etc/passwd /etc/group)

# ---- an overlay with a marker file, longruns and a oneshot, and the stand-in
ov=$EMU_TMP/overlay
rcd=$ov/etc/s6-overlay/s6-rc.d
mkdir -p "$ov/etc/hermes-emu-test" "$rcd/demo/data" "$rcd/demo/env" "$rcd/once" "$ov/usr/local/bin"
echo marker-from-overlay >"$ov/etc/hermes-emu-test/marker"
echo longrun >"$rcd/demo/type"
printf '#!/bin/sh\nexec sleep 1000000\n' >"$rcd/demo/run"
chmod 0600 "$rcd/demo/run" # compiled copies are 0755 whatever the source
printf '#!/bin/sh\nexit 0\n' >"$rcd/demo/finish"
echo 3 >"$rcd/demo/notification-fd"
echo 5000 >"$rcd/demo/timeout-kill"
echo x >"$rcd/demo/data/blob"
echo y >"$rcd/demo/env/VAR"
echo x >"$rcd/demo/not-copied"
mkdir "$rcd/demo/dependencies.d"
echo oneshot >"$rcd/once/type"
echo 'true' >"$rcd/once/up"
printf '#!/command/with-contenv sh\necho "var=${HERMES_TEST_VAR-unset} leak=${LEAK-unset}"\n' \
    >"$ov/usr/local/bin/contenv-probe"
chmod 0755 "$ov/usr/local/bin/contenv-probe"
standin=$(emu_standin_overlay)
ov2=$EMU_TMP/overlay2 # a later -o loses to an earlier one
mkdir -p "$ov2/etc/hermes-emu-test"
echo marker-from-overlay2 >"$ov2/etc/hermes-emu-test/marker"
echo only-in-2 >"$ov2/etc/hermes-emu-test/other"

vol=$EMU_TMP/volume
mkdir -m 0755 "$vol"

now_ms
t0=$NOW_MS
emu_boot -o "$ov" -o "$standin" -o "$ov2" -v "$vol" -e 'HERMES_TEST_VAR=hello  world' -e EMPTY= -S plain -L logged
now_ms
echo "boot took $((NOW_MS - t0)) ms"
c1=$EMU
pid1=$(<"$EMU/pid")

# ---- PID 1, root, the user, /run
assert_eq s6-svscan "$(emu_root cat /proc/1/comm)" "PID 1 is s6-svscan"
assert_eq s6-svscan "$(cat "/proc/$pid1/comm")" "STATEDIR/pid is the host pid of PID 1"
assert_eq 0 "$(emu_root awk '/^Uid:/ { print $2 }' /proc/1/status)" "s6-svscan runs as root"
assert_eq "PATH=/command:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" "$(emu_root sh -c 'tr "\0" "\n" </proc/1/environ')" "s6-svscan's whole environment"
assert_eq "10000 10000" "$(emu_root id -u hermes) $(emu_root id -g hermes)" "hermes resolves to 10000:10000"
assert_eq "uid=10000(hermes) gid=10000(hermes) groups=10000(hermes)" "$(emu_user id)" "emu_user runs as hermes"
assert_eq "/opt/data" "$(emu_user sh -c 'echo "$HOME"')" "hermes's HOME"
assert_eq "uid=0(root) gid=0(root) groups=0(root)" "$(emu_root id)" "emu_root runs as root"
assert_eq tmpfs "$(emu_root stat -f -c %T /run)" "/run is a tmpfs"
assert_eq "755 0:0" "$(emu_root stat -c '%a %u:%g' /run)" "/run mode"
assert_eq "1777 tmpfs" "$(emu_root stat -c %a /tmp) $(emu_root stat -f -c %T /tmp)" "/tmp"
assert_eq "$passwd_before" "$(sha256sum /etc/passwd /etc/group)" "host passwd/group untouched"
assert_rc 0 emu_root test -d /run/s6/basedir
assert_eq "/run/s6-rc:s6-rc-init:emu" "$(emu_root readlink -f /run/s6-rc)" "/run/s6-rc link"
assert_rc 0 emu_root test -x /command/s6-svc -a -x /command/execlineb -a -x /command/with-contenv

# ---- static services: supervised by root, held down, closed to hermes
sd=/run/s6-rc:s6-rc-init:emu/servicedirs
for s in s6rc-oneshot-runner s6rc-fdholder plain logged logged/log demo; do
    svc=/run/service/$s
    assert_rc 0 emu_root s6-svok "$svc"
    assert_eq "false false false" "$(emu_root s6-svstat -o up,wantedup,normallyup "$svc")" "$s is down, wanted down, normally down"
    assert_contains "$(emu_root s6-svstat "$svc")" "down (" "$s human status"
    assert_eq "700 0:0|3730 0:0" "$(emu_root stat -c '%a %u:%g' "$svc/supervise" "$svc/event" | paste -sd'|')" "$s supervise/ and event/"
    assert_rc 111 emu_user s6-svstat "$svc"
    assert_contains "$ASSERT_OUT" "Permission denied" "s6-svstat as hermes on $s"
    assert_rc 111 emu_user s6-svc -u "$svc"
done
for s in s6rc-oneshot-runner s6rc-fdholder plain logged demo; do
    assert_eq "$sd/$s" "$(emu_root readlink "/run/service/$s")" "/run/service/$s points at the real servicedir"
done
assert_eq "$(printf '%s\n' /run/service/.s6-svscan /run/service/demo /run/service/logged /run/service/plain \
    /run/service/s6rc-fdholder /run/service/s6rc-oneshot-runner)" \
    "$(emu_root sh -c 'ls -d /run/service/.* /run/service/* | grep -v "/\.\.\?$"')" "the scan directory"
supervisors=$(emu_root sh -c 'for p in /proc/[0-9]*; do c=$(cat $p/comm); [ "$c" = s6-supervise ] && awk "/^Uid:/ { print \$2 }" $p/status; done; true' | sort | uniq -c | awk '{print $1, $2}')
assert_eq "6 0" "$supervisors" "six root s6-supervise processes"
assert_rc 1 emu_root test -e /run/service/plain/log
assert_rc 0 emu_root test -x /run/service/logged/log/run

# the overlay longrun, compiled
assert_eq "$(printf '%s\n' data down env event finish notification-fd run supervise timeout-kill)" \
    "$(emu_root ls /run/service/demo)" "demo compiled like s6-rc-compile"
assert_eq "755 755" "$(emu_root stat -c %a /run/service/demo/run /run/service/demo/finish | paste -sd' ')" "run/finish modes"
assert_eq "x y" "$(emu_root cat /run/service/demo/data/blob /run/service/demo/env/VAR | paste -sd' ')" "data/ env/ copied"
assert_rc 1 emu_root test -e /run/service/once

# a static service can be brought up by root
assert_rc 0 emu_root s6-svc -u /run/service/plain
wait_until 3000 emu_root sh -c 's6-svstat -o up /run/service/plain | grep -qx true'
assert_rc 0 emu_root s6-svc -d /run/service/plain
wait_until 3000 emu_root sh -c 's6-svstat -o up /run/service/plain | grep -qx false'

# ---- with-contenv / printcontenv
out=$(emu_root env LEAK=yes /command/with-contenv env)
assert_contains "$out" "HERMES_TEST_VAR=hello  world" "with-contenv loads the container environment"
assert_contains "$out" "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" "with-contenv keeps PATH (docker exec's)"
assert_not_contains "$out" "LEAK=" "with-contenv hides the caller's environment"
assert_not_contains "$out" "HOME=" "with-contenv hides the caller's environment"
assert_contains $'\n'"$out"$'\n' $'\nEMPTY=\n' "an empty -e value is set, empty"
assert_eq "var=hello  world leak=unset" "$(emu_user env LEAK=yes /usr/local/bin/contenv-probe)" "#!/command/with-contenv sh as hermes"
assert_eq "hello  world" "$(emu_user printcontenv HERMES_TEST_VAR)" "printcontenv"
assert_eq "$(printf 'hello  world\n.')" "$(emu_root cat /run/s6/container_environment/HERMES_TEST_VAR; echo .)" "stored value + newline"
assert_rc 1 emu_user printcontenv NOT_THERE
assert_eq "755" "$(emu_root stat -c %a /run/s6/container_environment)" "container_environment mode"

# ---- overlay files, stand-in
assert_eq marker-from-overlay "$(emu_root cat /etc/hermes-emu-test/marker)" "-o overlay file visible, earlier -o wins"
assert_eq only-in-2 "$(emu_root cat /etc/hermes-emu-test/other)" "every -o is stacked"
assert_eq "/usr/bin/hermes" "$(emu_user sh -c 'command -v hermes')" "the stand-in is on PATH"
[[ ! -e /etc/hermes-emu-test ]] || fail "overlay file leaked onto the host"
assert_eq marker-from-overlay "$(cat "$(emu_path)/etc/hermes-emu-test/marker")" "emu_path gives the host view"
assert_rc 1 emu_root test -e /run/standin
emu_root install -d -m 1777 /run/standin
assert_rc 0 emu_user hermes --version
call=$(emu_root tail -n 1 /run/standin/calls)
assert_contains "$call" "uid=10000 gid=10000 home=/opt/data cwd=/run/service argv=--version" "stand-in call line"
(emu_user hermes gateway run --profile p1 || true) 2>/dev/null &
bg=$!
wait_until 3000 emu_root grep -q 'argv=gateway run --profile p1$' /run/standin/calls
gpid=$(emu_root sed -n 's/^pid=\([0-9]*\) .*argv=gateway run --profile p1$/\1/p' /run/standin/calls)
wait_until 3000 emu_root sh -c "[ \"\$(cat /proc/$gpid/comm)\" = sleep ]"
emu_root kill "$gpid"
wait "$bg"
emu_root sh -c 'echo 7 >/run/standin/exit-code'
assert_rc 7 emu_user hermes dashboard --port 1

# ---- the volume
assert_eq "10000:10000" "$(stat -c %u:%g "$vol")" "a fresh root-owned volume is chowned"
emu_user sh -c 'echo persisted >/opt/data/file'

# ---- a second container at the same time, without the overlay's longruns
emu_boot -n
c2=$EMU
assert_rc 1 emu_root test -e /run/service/demo
assert_rc 1 emu_root test -e /etc/hermes-emu-test/marker
assert_rc 1 emu_root test -e /opt/data/file
assert_eq "755 10000:10000" "$(emu_root stat -c '%a %u:%g' /opt/data)" "/opt/data without -v"
EMU=$c1 emu_root touch /run/only-in-c1
assert_rc 1 emu_root test -e /run/only-in-c1
assert_rc 111 "$HERMES_EMU" boot "$c2" -n
assert_contains "$ASSERT_OUT" "already running" "boot on a live STATEDIR is refused"
EMU=$c1

# ---- a bad boot fails cleanly
assert_rc 111 "$HERMES_EMU" boot "$EMU_TMP/bad" -o "$EMU_TMP/does-not-exist"
assert_contains "$ASSERT_OUT" "not a directory" "bad -o"
assert_rc 100 "$HERMES_EMU" boot "$EMU_TMP/bad" -x
assert_rc 111 "$HERMES_EMU" root "$EMU_TMP/bad" true
assert_rc 42 emu_root sh -c 'exit 42'
assert_rc 43 emu_user sh -c 'exit 43'
assert_eq "in" "$(echo in | emu_user cat)" "stdin passes through"

# ---- down: nothing left
pidns=$(readlink "/proc/$pid1/ns/pid")
mntns=$(readlink "/proc/$pid1/ns/mnt")
read -r upid _ <"$c1/unshare.pid"
emu_down "$c1"
emu_down "$c1" # idempotent
emu_down "$c2"
[[ ! -e /proc/$pid1 ]] || fail "PID 1 ($pid1) still exists after down"
ustate=$(awk '{ print $3 }' "/proc/$upid/stat" 2>/dev/null || true)
[[ -z $ustate || $ustate == Z ]] || fail "unshare ($upid) still running (state $ustate)"
for p in /proc/[0-9]*; do
    n=$(readlink "$p/ns/pid" 2>/dev/null) || continue
    m=$(readlink "$p/ns/mnt" 2>/dev/null) || continue
    [[ $n != "$pidns" && $m != "$mntns" ]] || fail "process ${p#/proc/} of the container survived down"
done
assert_eq "$mounts_before" "$(</proc/self/mountinfo)" "host mount table unchanged"
assert_eq persisted "$(cat "$vol/file")" "the volume outlives the container"
assert_eq "10000:10000" "$(stat -c %u:%g "$vol/file")" "volume file owner"
assert_eq "boot.args svscan.log" "$(cd "$c1" && echo *)" "down leaves only the log and the boot options (for restart)"
echo "self-test done"
