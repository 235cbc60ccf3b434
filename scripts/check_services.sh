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
# The monitoring integration test scrapes a live server with a real Prometheus binary.
if ! command -v prometheus >/dev/null 2>&1 && [ "$(id -u)" = 0 ] \
  && command -v apt-get >/dev/null 2>&1; then
  echo "installing Prometheus"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus \
    >/dev/null 2>&1 || {
    DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null 2>&1 \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        prometheus >/dev/null 2>&1
  } || echo "could not install Prometheus" >&2
fi
# The web UI's browser tests drive Debian's Chromium (never a downloaded browser).
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Chromium"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium \
    >/dev/null 2>&1 || {
    DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null 2>&1 \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        chromium >/dev/null 2>&1
  } || echo "could not install Chromium" >&2
fi
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
