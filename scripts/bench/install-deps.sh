#!/usr/bin/env bash
# Installs what the benchmarks compare lockscope with and what they need to run:
# fuser (psmisc), lsof, lslocks (util-linux), strace, perf (linux-perf), /usr/bin/time (time), gcc
# for the C load generator and floors, python3 for the runner. Machines that have
# them all skip apt entirely (works offline).
set -euo pipefail
need=()
have() { command -v "$1" >/dev/null 2>&1; }
have fuser   || need+=(psmisc)
have lsof    || need+=(lsof)
have lslocks || need+=(util-linux)
have strace  || need+=(strace)
have perf    || need+=(linux-perf)
have gcc     || need+=(gcc libc6-dev)
have python3 || need+=(python3)
have ps      || need+=(procps)
[ -x /usr/bin/time ] || need+=(time)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing ${need[*]}; run as root (or install them) and retry" >&2
  exit 1
fi
echo "install-deps: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
