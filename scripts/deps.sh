#!/usr/bin/env bash
# deps.sh: install the Debian packages lbtune's tests and demo use, when missing.
# Usage: scripts/deps.sh [PACKAGE...] (default: haproxy nginx wrk chromium prometheus).
# Needs root and apt-get to install; otherwise it only reports what is missing.
#
# Tests and the demo start their own HAProxy and NGINX on 127.0.0.1 with their
# own configs, so the packages' system services are not wanted. They are kept
# from starting at all (a policy-rc.d that refuses every start, the Debian way,
# only for the duration of this install) rather than stopped afterwards: this
# script never stops or kills a balancer it did not start, so running it on a
# balancer host that lacks one test package leaves production alone.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"
[ $# -gt 0 ] || set -- haproxy nginx wrk chromium prometheus
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
rc=${LBTUNE_POLICY_RC:-/usr/sbin/policy-rc.d} # overridable for its test (testbed/deps_test.go)
if [ ! -e "$rc" ]; then
  printf '#!/bin/sh\n# written by lbtune scripts/deps.sh for one install\nexit 101\n' >"$rc"
  chmod 755 "$rc"
  trap 'rm -f "$rc"' EXIT
fi
apt-get update -qq
apt-get install -y -qq "${need[@]}" >/dev/null
