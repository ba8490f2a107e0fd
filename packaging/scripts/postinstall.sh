#!/bin/sh
# Make systemd see the unit; amx is not started: its default configuration
# only logs, and credentials come first (docs/security.md).
set -e
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || true
fi
echo "amx: edit /etc/amx/amx.yml, check it with 'amx check /etc/amx/amx.yml', then: systemctl enable --now amx"
