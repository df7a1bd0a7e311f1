#!/bin/sh
# slot-prepare.sh TOOL SCANDIR PROFILE: the untimed set-up of bench/run's
# "running gateway" rows: PROFILE registered down with TOOL (hermes-slot),
# its scripts swapped for ones that run on a host without s6-overlay's
# /command (run: exec sleep; finish: exit 0, so SIGTERM is not a planned
# stop; log/run: drain), then started and waited for.
set -eu
tool=$1 sd=$2 p=$3
dir=$sd/gateway-$p
"$tool" -s "$sd" -u ":$(id -u):$(id -g)" register -d "$p" 2>/dev/null || true
for f in run finish log/run; do
    case $f in
        run) body='exec sleep 100000' ;;
        finish) body='exit 0' ;;
        *) body='exec cat >/dev/null' ;;
    esac
    printf '#!/bin/sh\n%s\n' "$body" >"$dir/$f.new"
    chmod 0755 "$dir/$f.new"
    mv "$dir/$f.new" "$dir/$f"
done
"$tool" -s "$sd" start -w "$p"
