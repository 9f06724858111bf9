#!/usr/bin/env bash
# Runs one worker limited to a share of one core, standing in for a worker
# on a small host of its own (a container with `cpus: 0.1`), for
# `scripts/scale-workers.sh`: on one shared machine the database and the
# api use the cores a second uncapped worker would need, so only capped
# workers show what a second one adds (docs/BENCHMARKS.md). Needs root and
# the cgroup cpu controller (v2, or v1 mounted at /sys/fs/cgroup/cpu).
#
#   scripts/capped-worker.sh PERCENT_OF_A_CORE [WORKER_BINARY]
set -euo pipefail
percent=${1:?usage: scripts/capped-worker.sh PERCENT_OF_A_CORE [WORKER_BINARY]}
worker=${2:-./target/release/worker}
period=100000
quota=$((period * percent / 100))
name=flash-sale-worker-$$
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    group=/sys/fs/cgroup/$name
    # Usually on already (systemd turns it on); needed for cpu.max.
    echo +cpu >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || true
    mkdir "$group"
    echo "$quota $period" >"$group/cpu.max"
else
    group=/sys/fs/cgroup/cpu/$name
    mkdir "$group"
    echo "$period" >"$group/cpu.cfs_period_us"
    echo "$quota" >"$group/cpu.cfs_quota_us"
fi
# The group is left behind when the worker ends: remove it with rmdir.
echo $$ >"$group/cgroup.procs"
echo "worker limited to $percent % of a core (cgroup $group)" >&2
exec "$worker"
