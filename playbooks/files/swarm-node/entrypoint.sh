#!/bin/bash
# Start a nested dockerd without --privileged (playbooks/swarm_lab.yml gives the capabilities): the
# container gets every capability but SYS_RESOURCE, so make /sys, the cgroup v1
# hierarchies and /proc/sys writable here, drop what a previous run left in /run, then become dockerd.
# Extra arguments are passed to dockerd (the lab adds its second socket with -H).
set -euo pipefail

mount -o remount,rw /sys
# The tmpfs holding the cgroup mounts, then each cgroup v1 hierarchy (name=systemd too):
# a read-only cgroup mount cannot be remounted read-write ("busy"), so unmount it and mount
# the same controllers again. The unified (cgroup2) hierarchy, where present, is left alone.
if [ "$(stat -f -c %T /sys/fs/cgroup)" = tmpfs ]; then
    mount -o remount,rw /sys/fs/cgroup
fi
grep -E '^[^ ]+ [^ ]+ cgroup ' /proc/self/mounts | while read -r _ target _ options _; do
    controllers=$(tr ',' '\n' <<<"$options" \
        | grep -Ev '^(ro|rw|nosuid|nodev|noexec|relatime|noatime|xattr|clone_children)$' \
        | paste -sd, -)
    umount "$target"
    mount -t cgroup -o "rw,nosuid,nodev,noexec,relatime,$controllers" cgroup "$target"
done

# Docker mounts parts of /proc read-only over the container's /proc (/proc/sys among them),
# and dockerd must write /proc/sys (ip_forward, bridge and conntrack settings of its own
# network namespace): unmount them, as --security-opt systempaths=unconfined would
# (community.docker.docker_container has no such option).
grep -E '^proc /proc/[^ ]+ proc ro,' /proc/self/mounts | while read -r _ target _; do
    umount "$target"
done

# A restarted node keeps its /run: stale pid files make dockerd and containerd refuse to start.
rm -rf /var/run/docker.pid /run/docker /run/containerd

exec dockerd "$@"
