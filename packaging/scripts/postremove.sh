#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || true
fi
# On purge, the user goes too; its state directory is the operator's.
if [ "$1" = purge ] && getent passwd amx >/dev/null; then
  userdel amx >/dev/null 2>&1 || true
fi
