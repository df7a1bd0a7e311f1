#!/bin/bash
# The boot doctor (hermes-svscan-perms -b) in containers booted as
# s6-overlay boots them: silent and exit 0 on a healthy container; one
# `condition:` line, exit 1, for each real-world condition present.
# shellcheck disable=SC2016 # inner sh -c scripts expand their own variables
# shellcheck source=tests/integration/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

doctor() { emu_root /usr/bin/hermes-svscan-perms -b "$@"; }

# docker exec's PATH: the image's ENV PATH (hermes-emu boot -P). Our
# Dockerfile's `image` target puts /command first; Debian's leaves it out.
readonly IMAGE_PATH=/command:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
readonly DEBIAN_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

boot() { # [hermes-emu boot options]
    emu_boot -2 -o "$HERMES_S6_DESTDIR" -e HERMES_HOME=/opt/data -P "$IMAGE_PATH" "$@"
}

# ---- healthy: nothing to say
boot
assert_eq ok "$(emu_wait_stage2 10000)" "healthy boot"
wait_until 5000 emu_root s6-svstat /run/hermes/service/gateway-default
assert_rc 0 doctor
assert_eq "" "$ASSERT_OUT" "a healthy container: no line"

# ---- an image whose PATH lacks /command, with s6-overlay's symlinks
# tarballs (/usr/bin/s6-svstat: hermes-agent's image): nothing to say
c1=$EMU
boot -P "$DEBIAN_PATH"
assert_eq ok "$(emu_wait_stage2 10000)" "boot, Debian's PATH"
assert_rc 0 doctor
assert_eq "" "$ASSERT_OUT" "s6 tools found through /usr/bin"
emu_down "$EMU"

# ---- /command missing from PATH and no symlinks: s6-svstat is not found
boot -P "$DEBIAN_PATH" -N
assert_eq ok "$(emu_wait_stage2 10000)" "boot, Debian's PATH, no symlinks"
assert_rc 1 doctor
assert_eq "condition: /command is not on PATH ($DEBIAN_PATH): s6-svstat, s6-svc and the other s6 tools are not found by name in docker exec" \
    "$ASSERT_OUT" "PATH without /command"
emu_down "$EMU"
EMU=$c1

# ---- a scan-directory entry s6-svscan cannot stat
emu_user ln -s /run/hermes/nowhere /run/hermes/service/ghost
assert_rc 1 doctor
assert_eq "condition: /run/hermes/service/ghost: s6-svscan cannot stat it (a dangling symlink?): s6-svscan 2.12 and later abandon every scan while it is there" \
    "$ASSERT_OUT" "dangling entry"
emu_user rm /run/hermes/service/ghost
assert_rc 0 doctor

# ---- profile-gateways not up
emu_root s6-svc -dwD -T 5000 /run/service/profile-gateways
assert_rc 1 doctor
assert_contains "$ASSERT_OUT" "condition: profile-gateways is down: its gateways are not supervised" "profile-gateways down"
emu_down "$EMU"

# ---- a bundle directory this s6-overlay does not read
boot -O 3.2.3.0
assert_eq ok "$(emu_wait_stage2 10000)" "3.2.3.0 boot"
emu_root rm /etc/s6-overlay/s6-rc.d/user/contents.d/dashboard
assert_rc 1 doctor
assert_eq "condition: dashboard is listed in /etc/s6-overlay/user-bundles.d/user/contents.d, which s6-overlay 3.2.3.0 does not read here: it never starts (list it in /etc/s6-overlay/s6-rc.d/user/contents.d too)" \
    "$ASSERT_OUT" "membership only where 3.2.3.0 does not look"
emu_down "$EMU"

# ---- an invalid topology
boot -e HERMES_S6_TOPOLOGY=isolate
assert_eq failed "$(emu_wait_stage2 10000)" "bad topology boot"
assert_rc 1 doctor
assert_contains "$ASSERT_OUT" "condition: HERMES_S6_TOPOLOGY=isolate is not a topology (isolated or shared): no gateway is supervised" "bad topology"
assert_contains "$ASSERT_OUT" "condition: profile-gateways is down" "and what it did"
emu_down "$EMU"

# ---- a non-root container
boot -u 10000
assert_eq ok "$(emu_wait_stage2 10000)" "non-root boot"
assert_rc 1 doctor
assert_eq "condition: the container runs as uid 10000 (docker run --user): the boot skips what needs root (no s6-setuidgid, no permission grants), and gateways run as uid 10000" \
    "$ASSERT_OUT" "non-root container"
emu_down "$EMU"

# ---- grace times shorter than the gateways need (when the operator says)
boot -e HERMES_S6_TOPOLOGY=shared -e HERMES_GATEWAY_STOP_MS=5000
assert_eq ok "$(emu_wait_stage2 10000)" "shared boot"
assert_rc 1 doctor
assert_eq "condition: S6_KILL_GRACETIME=3000 ms is shorter than the 5000 ms the gateways need (HERMES_GATEWAY_STOP_MS): docker stop SIGKILLs them mid-shutdown (raise it, and docker's stop timeout above it)" \
    "$ASSERT_OUT" "the default grace time is too short"
emu_down "$EMU"
boot -e HERMES_S6_TOPOLOGY=shared -e HERMES_GATEWAY_STOP_MS=5000 -e S6_KILL_GRACETIME=8000
assert_eq ok "$(emu_wait_stage2 10000)" "shared boot, grace raised"
assert_rc 0 doctor
emu_down "$EMU"
