#!/usr/bin/env bash
# (sourced by hermes-emu's in-namespace set-up, not run)
# setup.sh: what s6-overlay's preinit, stage0 and stage 1 leave behind that
# the plain emulated container lacks, for `hermes-emu boot -2`:
#
# * /package/admin/s6-overlay -> s6-overlay-VERSION (how a tool in the
#   container tells which s6-overlay it runs under), and for 3.2.3.0 what
#   that noarch tarball ships: /etc/s6-overlay/s6-rc.d/user{,2}/ as bundles;
# * /run/s6/basedir/{bin/halt,scripts/rc.init,scripts/rc.shutdown,env/PATH}
#   (this directory's rc.init and rc.shutdown are the emulated stage 2 and
#   3) and /run/s6/workdir;
# * /run/s6/container_environment with the whole environment /init saw
#   (PATH, HOME, HOSTNAME, PWD and the -e variables), not only the -e ones;
# * /run/service/.s6-svscan 0755 holding SIGTERM/SIGINT/SIGQUIT (stop: run
#   stage 3) and finish (exit with the container's exit code), as
#   s6-linux-init's container flavour has it; control and lock are made by
#   s6-svscan itself, 0600;
# * /run/s6-linux-init-container-results/exitcode (0);
# * for a non-root container (-u), /run and everything under it belongs to
#   that user, as preinit and s6-rc-init (run as that user) leave it.

# PATH of PID 1, the stages and every run script under s6-overlay.
readonly OVERLAY_PATH=/command:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# overlay_basedir ROOT VERSION: the s6-overlay version, the basedir with
# the stage scripts, the workdir and results files (every boot has them, so
# that lib.sh's emu_stage2 can run rc.init).
overlay_basedir() {
    local R=$1 version=$2 here
    here=$(dirname -- "$(realpath -e -- "${BASH_SOURCE[0]}")")
    case $version in
        3.2.3.0 | 3.2.3.2) ;;
        *) echo "hermes-emu: s6-overlay $version is not emulated (3.2.3.0 or 3.2.3.2)" >&2; exit 100 ;;
    esac
    mkdir -p -- "$R/package/admin/s6-overlay-$version"
    ln -sfn -- "s6-overlay-$version" "$R/package/admin/s6-overlay"
    if [[ $version == 3.2.3.0 ]]; then
        local b
        for b in user user2; do
            mkdir -p -- "$R/etc/s6-overlay/s6-rc.d/$b/contents.d"
            [[ -e $R/etc/s6-overlay/s6-rc.d/$b/type ]] || echo bundle >"$R/etc/s6-overlay/s6-rc.d/$b/type"
        done
    fi

    local base=$R/run/s6/basedir
    mkdir -p -- "$base/bin" "$base/scripts" "$base/env" "$R/run/s6-linux-init-container-results"
    install -m 0755 -- "$here/rc.init" "$here/rc.shutdown" "$base/scripts/"
    printf '#!/bin/sh\n# stop the container as docker stop does: stage 3 through PID 1.\nexec kill -TERM 1\n' >"$base/bin/halt"
    chmod 0755 -- "$base/bin/halt"
    printf '%s\n' "$OVERLAY_PATH" >"$base/env/PATH"
    echo / >"$R/run/s6/workdir"
    echo 0 >"$R/run/s6-linux-init-container-results/exitcode"
}

# overlay_layout ROOT UID GID ENV...: the rest (see the top), for -2 and -u.
overlay_layout() {
    local R=$1 uid=$2 gid=$3
    shift 3
    local ce=$R/run/s6/container_environment e
    printf '%s\n' "$OVERLAY_PATH" >"$ce/PATH"
    printf '%s\n' /root >"$ce/HOME"
    printf '%s\n' hermes-emu >"$ce/HOSTNAME"
    printf '%s\n' / >"$ce/PWD"
    for e in "$@"; do
        printf '%s\n' "${e#*=}" >"$ce/${e%%=*}"
    done

    local sc=$R/run/service/.s6-svscan sig
    mkdir -p -- "$sc"
    chmod 0755 -- "$sc"
    for sig in SIGTERM SIGINT SIGQUIT; do
        printf '#!/bin/sh\nexec /run/s6/basedir/scripts/rc.shutdown %s\n' "$sig" >"$sc/$sig"
    done
    # shellcheck disable=SC2016 # the script's own variables
    printf '%s\n' '#!/bin/sh' 'read -r code </run/s6-linux-init-container-results/exitcode' \
        'echo "s6-linux-init: info: the container exits with code ${code:-0}"' 'exit "${code:-0}"' >"$sc/finish"
    chmod 0755 -- "$sc"/*

    if [[ $uid != 0 ]]; then
        chown -R -- "$uid:$gid" "$R/run"
    fi
}

# overlay_start_stage2 ROOT UID GID CMD...: start rc.init in the background
# (it becomes PID 1's child once the set-up execs s6-svscan), as stage 1
# forks it: the basedir environment only, umask 022, stdin /dev/null.
overlay_start_stage2() {
    local R=$1 uid=$2 gid=$3 chroot=/usr/sbin/chroot
    shift 3
    [[ -x $chroot ]] || chroot=/usr/bin/chroot
    (
        umask 022
        exec /usr/bin/env --default-signal -i "PATH=$OVERLAY_PATH" \
            "$chroot" --userspec="$uid:$gid" "$R" /run/s6/basedir/scripts/rc.init top "$@" </dev/null
    ) &
}
