#!/bin/sh
# baseline-perms.sh SERVICEDIRS USER:GROUP
# The benchmark baseline: upstream's cont-init permissions stage
# (015-supervise-perms, doc/design.md#upstream-helpers) as a shell loop,
# parameterised by the service-directory set and the owner. It is measured
# against hermes-svscan-perms in bench/run (section perms), and the
# attacker tests use it as a negative control: chmod follows symlinks.
set -eu
svc_root=$1
owner=$2
if [ ! -d "$svc_root" ]; then
    echo "[supervise-perms] $svc_root not present; skipping"
    exit 0
fi
for svc in "$svc_root"/*; do
    [ -d "$svc" ] || continue
    name=${svc##*/}
    case $name in
        s6rc-* | s6-linux-*) continue ;;
    esac
    if [ -d "$svc/supervise" ]; then
        chown -R "$owner" "$svc/supervise" || echo "[supervise-perms] could not chown $name/supervise"
        chmod 0710 "$svc/supervise" 2>/dev/null || true
        if [ -p "$svc/supervise/control" ]; then
            chmod 0660 "$svc/supervise/control" 2>/dev/null || true
        fi
    fi
    if [ -d "$svc/event" ]; then
        chown "$owner" "$svc/event" || echo "[supervise-perms] could not chown $name/event"
        chmod 03730 "$svc/event" 2>/dev/null || true
    fi
done
echo "[supervise-perms] chowned supervise/ trees for static s6-rc services"
