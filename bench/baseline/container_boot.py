#!/usr/bin/env python3
"""Baseline for `bench/run reconcile`: the upstream boot reconcile
(hermes_cli/container_boot.py, version R-3, see
doc/design.md#upstream-helpers) re-implemented with the Python standard
library only, so its cost can be compared with hermes-reconcile's.

Same algorithm and same file operations: container argv from /proc, the
dashboard skip, the legacy migration, the default slot then every
profiles/<name>/ with a SOUL.md in sorted order, the intent rule, stale
file removal, a staging directory per slot (run, finish, log/run, type,
down, the supervise skeleton with chmod and a chown to 10000 whose
PermissionError is swallowed), rmtree of a live slot then replace, and the
rotated container-boot.log. Not a product: no hardening, no warnings
beyond upstream's. Environment: HERMES_HOME, S6_PROFILE_GATEWAY_SCANDIR,
GATEWAY_MULTIPLEX_PROFILES, HERMES_GATEWAY_NO_SUPERVISE.
"""
import json
import logging
import os
import re
import shutil
import sys
import time
from pathlib import Path

log = logging.getLogger("container_boot")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
UID = GID = 10000
ROTATE_AT = 262144


def truthy(value):
    return str(value or "").strip().lower() in ("1", "true", "yes", "on")


def container_argv():
    pids = ["1"] + sorted((p for p in os.listdir("/proc") if p.isdigit() and p != "1"), key=int)
    for pid in pids:
        try:
            raw = Path("/proc", pid, "cmdline").read_bytes()
        except OSError:
            continue
        argv = tuple(a.decode("utf-8", "replace") for a in raw.split(b"\0") if a)
        if any("main-wrapper.sh" in a for a in argv):
            return argv
    return ()


def strip_argv(argv):
    args = list(argv)
    for i, a in enumerate(args):
        if a.endswith("main-wrapper.sh"):
            args = args[i + 1:]
            break
    else:
        if args and os.path.basename(args[0]) == "init":
            args = args[1:]
    if args and args[0].endswith("entrypoint-dispatch.sh"):
        args = args[1:]
    if args and os.path.basename(args[0]) == "hermes":
        args = args[1:]
    return args


def check_name(name):
    if not name:
        raise ValueError("profile name must not be empty")
    if len(name) > 251:
        raise ValueError("profile name too long (%d > 251)" % len(name))
    if not NAME_RE.match(name):
        raise ValueError("profile name must match [a-z0-9][a-z0-9_-]*, got %r" % name)


def read_desired(home):
    path = home / "gateway_state.json"
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, json.JSONDecodeError):
        log.warning("could not read %s; treating as no prior state", path)
        return None
    if data.get("desired_state") is not None:
        return data["desired_state"]
    state = data.get("gateway_state")
    return "running" if state in ("draining", "degraded") else state


def prior_exit(home):
    try:
        data = json.loads((home / "state" / "gateway.lifecycle.json").read_text())
        phase = data.get("phase") if isinstance(data, dict) else None
    except Exception:
        return "unknown"
    return {"exited": "clean", "running": "unclean"}.get(phase, "unknown")


def run_text(profile):
    cmd = "hermes gateway run --replace" if profile == "default" else "hermes -p %s gateway run --replace" % profile
    return "\n".join([
        "#!/command/with-contenv sh", "# shellcheck shell=sh", "set -e",
        "export HOME=/opt/data", "cd /opt/data",
        "export HERMES_S6_SUPERVISED_CHILD=1", "export HERMES_SUPERVISED_CHILD=1",
        '[ "$(id -u)" = 0 ] || exec ' + cmd, "exec s6-setuidgid hermes " + cmd, ""])


FINISH = "\n".join([
    "#!/command/with-contenv sh", "# shellcheck shell=sh",
    'if [ "$1" = "78" ]; then', "  exit 125", "fi",
    'if [ "$1" = "0" ]; then', "  exit 125", "fi", "exit 0", ""])


def log_run_text(profile):
    return "\n".join([
        "#!/command/with-contenv sh", "# shellcheck shell=sh",
        ': "${HERMES_HOME:=/opt/data}"',
        'log_dir="$HERMES_HOME/logs/gateways/%s"' % profile,
        'if [ "$(id -u)" = 0 ]; then',
        '  s6-setuidgid hermes mkdir -p "$log_dir"',
        '  s6-setuidgid hermes rm -f "$log_dir/lock"',
        "else", '  mkdir -p "$log_dir"', '  rm -f "$log_dir/lock"', "fi",
        '[ "$(id -u)" = 0 ] || exec s6-log 1 n10 s1000000 T "$log_dir"',
        'exec s6-setuidgid hermes s6-log 1 n10 s1000000 T "$log_dir"', ""])


def own(path, mode):
    os.chmod(path, mode)
    try:
        os.chown(path, UID, GID)
    except PermissionError:
        pass


def seed(svc):
    for d in (svc, svc / "log"):
        if d != svc and not d.is_dir():
            continue
        for rel, mode in (("event", 0o3730), ("supervise", 0o755), ("supervise/event", 0o3730)):
            p = d / rel
            if not p.exists():
                p.mkdir()
                own(p, mode)
        ctl = d / "supervise" / "control"
        if not ctl.exists():
            os.mkfifo(ctl, 0o660)
            own(ctl, 0o660)


def register(scandir, profile, start):
    check_name(profile)
    tmp = scandir / (".gateway-%s.tmp" % profile)
    live = scandir / ("gateway-%s" % profile)
    if tmp.exists():
        shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        (tmp / "type").write_text("longrun\n")
        (tmp / "run").write_text(run_text(profile))
        (tmp / "run").chmod(0o755)
        (tmp / "finish").write_text(FINISH)
        (tmp / "finish").chmod(0o755)
        (tmp / "log").mkdir()
        (tmp / "log" / "run").write_text(log_run_text(profile))
        (tmp / "log" / "run").chmod(0o755)
        if not start:
            (tmp / "down").touch()
        seed(tmp)
        if live.exists():
            shutil.rmtree(live)
        tmp.replace(live)
    except Exception:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def remove_stale(home):
    for name in ("gateway.pid", "processes.json"):
        try:
            (home / name).unlink()
        except FileNotFoundError:
            pass


def main():
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    args = strip_argv(container_argv())
    if args[:1] == ["dashboard"]:
        print("reconcile: skipping (dashboard container)")
        return 0
    home = Path(os.environ.get("HERMES_HOME", "/opt/data"))
    scandir = Path(os.environ.get("S6_PROFILE_GATEWAY_SCANDIR", "/run/service"))
    multiplex = truthy(os.environ.get("GATEWAY_MULTIPLEX_PROFILES"))
    actions = []
    prior = None
    legacy = args[:2] == ["gateway", "run"] and "--no-supervise" not in args
    if (not (home / "gateway_state.json").exists() and legacy
            and not truthy(os.environ.get("HERMES_GATEWAY_NO_SUPERVISE"))):
        record = {"gateway_state": "running", "desired_state": "running",
                  "timestamp": int(time.time()), "migrated_from": "legacy-container-cmd"}
        (home / "gateway_state.json").write_text(json.dumps(record) + "\n")
        prior = "running"
    else:
        prior = read_desired(home)
    remove_stale(home)
    register(scandir, "default", prior == "running")
    actions.append(("default", prior, "started" if prior == "running" else "registered", prior_exit(home)))
    profiles = home / "profiles"
    if profiles.is_dir():
        for d in sorted(profiles.iterdir()):
            if not d.is_dir() or not (d / "SOUL.md").exists():
                continue
            if d.name == "default":
                log.warning("profiles/default/ exists; skipped")
                continue
            prior = read_desired(d)
            start = not multiplex and prior == "running"
            remove_stale(d)
            register(scandir, d.name, start)
            actions.append((d.name, prior, "started" if start else "registered", prior_exit(d)))
    logs = home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    boot_log = logs / "container-boot.log"
    try:
        if boot_log.exists() and boot_log.stat().st_size >= ROTATE_AT:
            boot_log.replace(logs / "container-boot.log.1")
    except OSError as exc:
        log.warning("could not rotate %s: %s", boot_log, exc)
    ts = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    with boot_log.open("a") as f:
        for p, s, a, e in actions:
            f.write("%s profile=%s prior_state=%s action=%s prior_exit=%s\n" % (ts, p, s, a, e))
    for p, s, a, _ in actions:
        print("reconcile: profile=%s prior_state=%s action=%s" % (p, s, a))
    return 0


if __name__ == "__main__":
    sys.exit(main())
