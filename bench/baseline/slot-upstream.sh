#!/bin/sh
# slot-upstream.sh register|register-supervised|register-probe|unregister SCANDIR PROFILE [TEMPLATE]
# The benchmark baseline for hermes-slot: upstream's S6ServiceManager
# (doc/design.md#upstream-helpers) with the s6 tools, minus Python.
#   register: the slot is built in .gateway-<p>.tmp (here: a copy of
#     TEMPLATE, a complete slot with its supervise skeleton), renamed into
#     place, then `s6-svscanctl -a`, which returns without waiting: the
#     slot is usually not supervised yet when register returns.
#   register-supervised: the same, then polls s6-svok until a supervisor
#     holds the slot (what a caller must do to know it is registered).
#   register-probe: the same as register, then one s6-svok at once: exit 0
#     if the slot was supervised when register returned.
#   unregister: s6-svc -d; s6-svwait -D -t 10000; s6-svscanctl -an;
#     sleep 0.2; rm -rf (results ignored, as upstream does).
set -u
cmd=$1 sd=$2 p=$3 template=${4:-}
dir=$sd/gateway-$p
case $cmd in
    register | register-supervised | register-probe)
        tmp=$sd/.gateway-$p.tmp
        rm -rf "$tmp"
        mkdir "$tmp"
        cp -a "$template/." "$tmp/"
        mv "$tmp" "$dir"
        s6-svscanctl -a "$sd" || { rm -rf "$dir"; exit 1; }
        case $cmd in
            register-supervised) until s6-svok "$dir" 2>/dev/null; do :; done ;;
            register-probe) exec s6-svok "$dir" ;;
        esac
        ;;
    unregister)
        [ -d "$dir" ] || exit 0
        s6-svc -d "$dir" 2>/dev/null
        s6-svwait -D -t 10000 "$dir" 2>/dev/null
        s6-svscanctl -an "$sd" 2>/dev/null
        sleep 0.2
        rm -rf "$dir"
        ;;
    *)
        echo "usage: slot-upstream.sh register|register-supervised|register-probe|unregister SCANDIR PROFILE [TEMPLATE]" >&2
        exit 100
        ;;
esac
