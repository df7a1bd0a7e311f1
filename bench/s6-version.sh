#!/bin/bash
# s6-version.sh REL OUTFILE: the figures of `bench/run s6` for the s6 on
# PATH (run it under tests/container/with-s6), one line of medians in
# microseconds into OUTFILE:
#   register unregister status reconcile100 supervised100
# register -d -> supervised and unregister -> gone (hyperfine), status of
# one slot, hermes-reconcile of 100 profiles (scan directory emptied
# before each run), and reconcile + rescan until all 200 supervisors run
# (median of 7, timed here). Everything as UID 10000 on tmpfs, with an
# s6-svscan run by that user (the isolated topology).
set -euo pipefail
rel=$(realpath "$1")
out=$2
runs=${SLOT_RUNS:-50}
as_user=(setpriv --reuid=10000 --regid=10000 --clear-groups)
scratch=$(mktemp -d /dev/shm/hermes-s6-bench-s6.XXXXXX)
svscan=''
cleanup() {
    if [[ -n $svscan ]]; then
        "${as_user[@]}" s6-svscanctl -t "$scratch/scan" 2>/dev/null || true
        wait "$svscan" 2>/dev/null || true
    fi
    rm -rf "$scratch"
}
trap cleanup EXIT
chmod 0755 "$scratch"
mkdir -p "$scratch/scan" "$scratch/home/profiles"
for ((i = 0; i < 99; i++)); do
    mkdir -p "$scratch/home/profiles/p$i"
    echo soul >"$scratch/home/profiles/p$i/SOUL.md"
done
chown -R 10000:10000 "$scratch"
"${as_user[@]}" s6-svscan "$scratch/scan" </dev/null >/dev/null 2>&1 &
svscan=$!
until [[ -p $scratch/scan/.s6-svscan/control ]] && "${as_user[@]}" s6-svscanctl -z "$scratch/scan" 2>/dev/null; do sleep 0.01; done

slot="$rel/hermes-slot -s $scratch/scan -u :10000:10000"
slot_argv=("$rel/hermes-slot" -s "$scratch/scan" -u :10000:10000)
"${as_user[@]}" hyperfine -N -w 5 -r "$runs" --export-json "$scratch/reg.json" \
    -p "$slot unregister bench" "$slot register -d bench" >/dev/null 2>&1
"${as_user[@]}" "${slot_argv[@]}" unregister bench
"${as_user[@]}" hyperfine -N -w 5 -r "$runs" --export-json "$scratch/unreg.json" \
    -p "$slot register -d bench" "$slot unregister bench" >/dev/null 2>&1
"${as_user[@]}" "${slot_argv[@]}" register -d bench
"${as_user[@]}" hyperfine -N -w 20 -r 300 --export-json "$scratch/status.json" "$slot status bench" >/dev/null 2>&1
"${as_user[@]}" "${slot_argv[@]}" unregister bench

# Reconcile alone (no rescan): the scan directory is emptied first.
rec="$rel/hermes-reconcile -u :10000:10000 -H $scratch/home -s $scratch/rec"
mkdir -p "$scratch/rec" && chown 10000:10000 "$scratch/rec"
"${as_user[@]}" hyperfine -N -w 2 -r 15 --export-json "$scratch/rec.json" \
    -p "sh -c 'find $scratch/rec -mindepth 1 -delete'" "$rec" >/dev/null 2>&1

# Reconcile into the watched directory, rescan, until every supervisor
# runs; then everything is pruned again (not timed).
times=()
for ((k = 0; k < 7; k++)); do
    t0=${EPOCHREALTIME/./}
    "${as_user[@]}" "$rel/hermes-reconcile" -u :10000:10000 -H "$scratch/home" -s "$scratch/scan" >/dev/null
    "${as_user[@]}" s6-svscanctl -a "$scratch/scan"
    until (($(pgrep -c -P "$svscan" -x s6-supervise) == 200)); do sleep 0.002; done
    t1=${EPOCHREALTIME/./}
    times+=($((t1 - t0)))
    mkdir "$scratch/gone"
    mv "$scratch/scan"/gateway-* "$scratch/gone/"
    "${as_user[@]}" s6-svscanctl -an "$scratch/scan"
    while (($(pgrep -c -P "$svscan" -x s6-supervise) > 0)); do sleep 0.01; done
    rm -rf "$scratch/gone"
done
sup=$(printf '%s\n' "${times[@]}" | sort -n | sed -n 4p)

med() { python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["results"][0]["median"]*1e6,1))' "$1"; }
printf '%s %s %s %s %s\n' "$(med "$scratch/reg.json")" "$(med "$scratch/unreg.json")" "$(med "$scratch/status.json")" \
    "$(med "$scratch/rec.json")" "$sup" >"$out"
