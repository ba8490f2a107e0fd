#!/bin/sh
# The amx system user, before the files owned by its group are unpacked.
set -e
if ! getent group amx >/dev/null; then
  groupadd --system amx
fi
if ! getent passwd amx >/dev/null; then
  useradd --system --gid amx --home-dir /var/lib/amx --no-create-home --shell /usr/sbin/nologin amx
fi
