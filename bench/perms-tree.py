#!/usr/bin/env python3
"""perms-tree.py make|reset DIR N: the benchmark tree of bench/run (perms).

DIR/sd holds N static services svc-0..svc-(N-1), plus s6rc-oneshot-runner
and s6rc-fdholder, each as s6-rc-init and a root s6-supervise leave it:
event/ 03730, supervise/ 0700 with control (FIFO 0600), lock, status and
death_tally, all root:root. DIR/scan is a scan directory with .s6-svscan/,
DIR/user a user scan directory. `reset` puts owners and modes back to that
state (run before each timed run); `make` creates it.
"""
import os
import sys


def services(sd, n):
    return [os.path.join(sd, f"svc-{i}") for i in range(n)] + [
        os.path.join(sd, "s6rc-oneshot-runner"),
        os.path.join(sd, "s6rc-fdholder"),
    ]


def make(d, n):
    sd = os.path.join(d, "sd")
    os.makedirs(sd)
    for svc in services(sd, n):
        os.makedirs(os.path.join(svc, "supervise"))
        os.mkdir(os.path.join(svc, "event"))
        os.mkfifo(os.path.join(svc, "supervise", "control"))
        for f in ("lock", "status", "death_tally"):
            with open(os.path.join(svc, "supervise", f), "wb") as fh:
                fh.write(b"\0" * 35 if f == "status" else b"")
        with open(os.path.join(svc, "run"), "w") as fh:
            fh.write("#!/bin/sh\nexec sleep 1000\n")
    os.makedirs(os.path.join(d, "scan", ".s6-svscan"))
    os.mkfifo(os.path.join(d, "scan", ".s6-svscan", "control"))
    os.makedirs(os.path.join(d, "user"))
    reset(d, n)


def reset(d, n):
    for svc in services(os.path.join(d, "sd"), n):
        sup = os.path.join(svc, "supervise")
        for p, m in ((sup, 0o700), (os.path.join(sup, "control"), 0o600), (os.path.join(svc, "event"), 0o3730)):
            os.chown(p, 0, 0)
            os.chmod(p, m)
        for f in ("lock", "status", "death_tally"):
            os.chown(os.path.join(sup, f), 0, 0)


if __name__ == "__main__":
    cmd, d, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    {"make": make, "reset": reset}[cmd](d, n)
