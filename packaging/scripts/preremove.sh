#!/bin/sh
# Stop amx before its binary goes (on removal, not on upgrade).
set -e
case "$1" in
  remove|0)
    if [ -d /run/systemd/system ]; then
      systemctl disable --now amx >/dev/null 2>&1 || true
    fi
    ;;
esac
