#!/usr/bin/env bash
# Start (when possible) and check the services the scale-out tests use.
# The embedded default needs none of them; tests skip without them unless
# LOOPML_REQUIRE_SERVICES=1, in which case a missing service fails the run here.
set -u

pg_ok() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }
redis_ok() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }

if ! pg_ok && command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
  echo "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  for _ in $(seq 1 20); do pg_ok && break; sleep 0.5; done
fi
# Install a Debian package (as root, with apt-get; an update and a second try when the
# package lists are stale). $1: the package, $2: its name in messages.
apt_install() {
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then return 1; fi
  echo "installing $2"
  local install=(apt-get install -y -q --no-install-recommends "$1")
  DEBIAN_FRONTEND=noninteractive "${install[@]}" >/dev/null 2>&1 || {
    DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null 2>&1 \
      && DEBIAN_FRONTEND=noninteractive "${install[@]}" >/dev/null 2>&1
  } || { echo "could not install $2" >&2; return 1; }
}

# The monitoring integration test scrapes a live server with a real Prometheus binary.
command -v prometheus >/dev/null 2>&1 || apt_install prometheus Prometheus || true
# The web UI's browser tests drive Debian's Chromium (never a downloaded browser).
[ -x /usr/bin/chromium ] || apt_install chromium Chromium || true
if ! redis_ok && command -v redis-server >/dev/null 2>&1; then
  echo "starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no || true
  for _ in $(seq 1 20); do redis_ok && break; sleep 0.5; done
fi

missing=0
if pg_ok; then echo "PostgreSQL: up"; else echo "PostgreSQL: DOWN"; missing=1; fi
if redis_ok; then echo "Redis: up"; else echo "Redis: DOWN"; missing=1; fi
if command -v prometheus >/dev/null 2>&1; then echo "Prometheus: installed"; else echo "Prometheus: MISSING"; missing=1; fi
if [ -x /usr/bin/chromium ]; then echo "Chromium: installed"; else echo "Chromium: MISSING"; missing=1; fi
if [ "$missing" = 1 ] && [ "${LOOPML_REQUIRE_SERVICES:-0}" = 1 ]; then
  echo "LOOPML_REQUIRE_SERVICES=1 and a service is down" >&2
  exit 1
fi
exit 0
