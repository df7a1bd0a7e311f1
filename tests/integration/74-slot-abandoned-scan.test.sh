#!/bin/bash
# A slot first seen by a scan that s6-svscan abandoned. Since s6 2.12,
# s6-svscan abandons a whole scan when it cannot stat an entry (here a
# dangling symlink, gone a second later), and never starts a service that
# such a scan saw first, whatever later rescans do (an s6 bug). register
# publishes such a slot again as a new directory, which s6-svscan sees as
# new: it returns supervised. (s6 2.11 only skips the bad entry.)
# shellcheck disable=SC2016 # single-quoted scripts run inside the container
# shellcheck source=tests/integration/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/slot.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/slot.sh"

for topology in isolated shared; do
    slot_boot "$topology"
    emu_root ln -s /nonexistent/svc "$SD/dangling"
    # The doctor says what stops the scans.
    assert_rc 1 emu_root /usr/bin/hermes-svscan-perms -n -T "$topology"
    assert_contains "$ASSERT_OUT" "warning: s6-svscan cannot stat $SD/dangling: No such file or directory" "$topology: the doctor warns"
    { sleep 1 && "$HERMES_EMU" root "$EMU" rm "$SD/dangling"; } &
    remover=$!
    assert_rc 0 slot register -d late
    wait "$remover"
    emu_user s6-svok "$SD/gateway-late" || fail "$topology: late not supervised on return"
    emu_user s6-svok "$SD/gateway-late/log" || fail "$topology: late's logger not supervised on return"
    assert_eq "" "$(emu_root sh -c "ls -A $SD | grep -E 'late.*gone' || true")" "$topology: no copy left aside"
    emu_down "$EMU"
done
