#!/usr/bin/env bash
# deps.sh: install the Debian packages lbtune's tests and demo use, when missing.
# Usage: scripts/deps.sh [PACKAGE...] (default: haproxy nginx wrk chromium).
# Needs root and apt-get to install; otherwise it only reports what is missing.
# The packages' own services are stopped: tests and the demo start their own
# HAProxy and NGINX on 127.0.0.1 with their own configs.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"
[ $# -gt 0 ] || set -- haproxy nginx wrk chromium
need=()
for pkg in "$@"; do
  command -v "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "deps: missing ${need[*]} (install them as root: apt-get install -y ${need[*]})" >&2
  exit 1
fi
echo "deps: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${need[@]}" >/dev/null
# The packages start system services on install; stop them.
for svc in nginx haproxy; do
  (systemctl stop "$svc" || service "$svc" stop) >/dev/null 2>&1 || true
done
pkill -x nginx 2>/dev/null || true
pkill -x haproxy 2>/dev/null || true
