#!/bin/sh
# Finishes the Debian root file system kiln's installer ISO carries: what each install gives its own
# (machine id, SSH host keys) is removed, and apt's downloaded lists and packages.
set -eu
ROOT=$1
: >"$ROOT/etc/machine-id"
rm -f "$ROOT/var/lib/dbus/machine-id" "$ROOT"/etc/ssh/ssh_host_*
rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/*.bin "$ROOT"/var/cache/apt/archives/*.deb \
    "$ROOT"/var/log/*.log "$ROOT"/tmp/*
