"""Files baked into the node image: the boot script and the one-time setup run at build.

They live here as text (not as package data) so the image recipe hash covers them exactly:
changing a line here changes the image tag, and the next ``ensure_node_image`` rebuilds.
"""

from __future__ import annotations

DEFAULT_USER = "kombify"

# Runs at every container start under docker-init (``--init``), which reaps the processes sshd
# leaves behind. Only per-node work happens here: everything shared is done at build time.
NODE_INIT = r"""#!/bin/sh
# kombify node boot: unique host key, authorized key, sshd first (fast), then dockerd and
# the supervisor of kombify's node agent.
set -u
if [ ! -s /etc/ssh/ssh_host_ed25519_key ]; then
  ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key
fi
user="${KOMBIFY_USER:-kombify}"
if ! id "$user" >/dev/null 2>&1; then
  useradd -m -s /bin/bash -G sudo,docker "$user"
  echo "$user ALL=(ALL) NOPASSWD:ALL" >"/etc/sudoers.d/90-$user"
  chmod 0440 "/etc/sudoers.d/90-$user"
fi
home=$(getent passwd "$user" | cut -d: -f6)
keys=/run/kombify/authorized_keys
if [ -n "${KOMBIFY_AUTHORIZED_KEY:-}" ] || [ -s "$keys" ]; then
  mkdir -p "$home/.ssh"
  {
    [ -n "${KOMBIFY_AUTHORIZED_KEY:-}" ] && printf '%s\n' "$KOMBIFY_AUTHORIZED_KEY"
    [ -s "$keys" ] && cat "$keys"
  } >"$home/.ssh/authorized_keys"
  chmod 0700 "$home/.ssh"
  chmod 0600 "$home/.ssh/authorized_keys"
  chown -R "$user:$user" "$home/.ssh"
fi
mkdir -p /run/sshd
/usr/sbin/sshd -e
# Everything after sshd boots at a lower CPU priority, so that sshd answers first when many
# nodes boot on few cores; once the engine's API listens (or 60 s passed), every thread of
# what started here gets the normal priority back (renice acts per thread: /proc/PID/task).
renice -n 10 -p $$ >/dev/null
if [ -n "${KOMBIFY_NAT_FROM:-}" ]; then
  # A home node on the simulated internet is behind NAT: what it started there is answered,
  # nothing new gets in. Mangle/PREROUTING sees traffic for the node and for its containers
  # alike. The bridge's gateway is this machine (published ports arrive from it): let it in.
  for rule in "-s ${KOMBIFY_NAT_GATEWAY:-0.0.0.0/32} -j RETURN" \
    "-s $KOMBIFY_NAT_FROM -m conntrack ! --ctstate ESTABLISHED,RELATED -j DROP"; do
    # shellcheck disable=SC2086
    iptables -t mangle -C PREROUTING $rule 2>/dev/null || iptables -t mangle -A PREROUTING $rule
  done
  # mDNS is the LAN's: the node announces and resolves nothing on the internet side.
  online=$(ip -o route show "$KOMBIFY_NAT_FROM" | awk '{print $3; exit}')
  [ -z "$online" ] || sed -i "s/^#\{0,1\}deny-interfaces=.*/deny-interfaces=$online/" \
    /etc/avahi/avahi-daemon.conf
fi
# A machine id of the node's own (D-Bus and avahi want one; the image ships none).
[ -s /etc/machine-id ] || dbus-uuidgen --ensure=/etc/machine-id
if [ "${KOMBIFY_MDNS:-0}" = 1 ]; then
  # `local` nodes announce and resolve `<hostname>.local` on the simulation's LAN. Pid files
  # survive `docker stop` and the next boot reuses small pids: remove them first.
  rm -f /run/dbus/pid /run/avahi-daemon/pid
  mkdir -p /run/dbus
  dbus-daemon --system --fork && avahi-daemon --daemonize
fi
dockerd_pid=""
if [ "${KOMBIFY_DOCKERD:-1}" = 1 ]; then
  # /run is not emptied between boots of a container as it is on a machine: the last boot's
  # containerd pid and sockets would make dockerd's containerd time out and the engine never
  # start (seen after `docker restart` of a node whose services ran).
  rm -rf /var/run/docker.pid /var/run/docker /run/containerd
  dockerd >/var/log/dockerd.log 2>&1 &
  dockerd_pid=$!
fi
# The node's init supervises kombify's agent as systemd does on a real node: it starts at
# boot once installed, and again after a crash. The pid file is from the last boot.
rm -f /run/kombify-agent.pid
/usr/local/sbin/kombify-agent-supervisor &
supervisor_pid=$!
(
  i=0
  while [ -n "$dockerd_pid" ] && [ ! -S /var/run/docker.sock ] && [ "$i" -lt 600 ]; do
    sleep 0.1
    i=$((i + 1))
  done
  for pass in 1 2; do  # twice: a thread made during the first pass may have missed it
    for pid in $$ $dockerd_pid $supervisor_pid \
      $(cat /run/dbus/pid /run/avahi-daemon/pid 2>/dev/null); do
      for proc in "$pid" $(pgrep -P "$pid"); do
        for task in /proc/"$proc"/task/*; do renice -n 0 -p "${task##*/}" >/dev/null 2>&1; done
      done
    done
    sleep 1
  done
) &
stop() {
  kill -TERM "$supervisor_pid" 2>/dev/null  # the agent first: it stops its engine calls
  # Let the inner engine shut down cleanly so its volume stays consistent across stop/start.
  if [ -n "$dockerd_pid" ]; then
    kill -TERM "$dockerd_pid" 2>/dev/null
    wait "$dockerd_pid" 2>/dev/null
  fi
  exit 0
}
trap stop TERM INT
while :; do
  sleep 3600 &
  wait $!
done
"""

# Started by NODE_INIT; runs what the control plane installs as /etc/kombify/agent/run (the
# same script a real node's systemd unit runs) and starts it again whenever it ends. kombify
# restarts the agent (new version, new certificate) by stopping it and sending this a HUP.
AGENT_SUPERVISOR = r"""#!/bin/sh
# kombify node: keeps kombify's node agent running once it is installed.
set -u
run=/etc/kombify/agent/run
mkdir -p /run/kombify
echo $$ >/run/kombify/agent-supervisor.pid
child=""
sleeper=""
wake=0
pause=1
trap 'wake=1; [ -z "$sleeper" ] || kill "$sleeper" 2>/dev/null' HUP
trap '[ -z "$child" ] || kill -TERM "$child" 2>/dev/null; exit 0' TERM INT
while :; do
  if [ -x "$run" ]; then
    started=$(date +%s)
    "$run" </dev/null >/dev/null 2>&1 &
    child=$!
    # A HUP ends `wait` early while the agent still runs: wait again.
    while kill -0 "$child" 2>/dev/null; do wait "$child"; done
    child=""
    # An agent that ends within 10 s of its start waits longer each time, up to 10 s.
    if [ $(($(date +%s) - started)) -lt 10 ]; then
      pause=$((pause * 2 > 10 ? 10 : pause * 2))
    else
      pause=1
    fi
  else
    pause=5  # not installed (yet, or any more): kombify's HUP wakes this at once
  fi
  if [ "$wake" = 1 ]; then
    wake=0
    pause=1
    continue
  fi
  sleep "$pause" &
  sleeper=$!
  wait "$sleeper"
  sleeper=""
  [ "$wake" = 1 ] && pause=1 && wake=0
done
"""

SSHD_CONFIG = """# kombify node: one host key (generated at first boot), keys only, no DNS lookups.
HostKey /etc/ssh/ssh_host_ed25519_key
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UseDNS no
MaxStartups 200:30:400
"""

# Runs once, at image build, as root inside the base image.
SETUP = r"""#!/bin/sh
set -eux
useradd -m -s /bin/bash -G sudo,docker kombify
echo 'kombify ALL=(ALL) NOPASSWD:ALL' >/etc/sudoers.d/90-kombify
chmod 0440 /etc/sudoers.d/90-kombify
# Host keys must differ per node: drop the ones the package made, the boot script makes one.
rm -f /etc/ssh/ssh_host_*
# pam_loginuid cannot write the audit login uid in every container runtime; keep logins working.
sed -i 's/^session\s\+required\s\+pam_loginuid.so/session optional pam_loginuid.so/' /etc/pam.d/sshd
mkdir -p /run/sshd /run/kombify
chmod 0755 /usr/local/sbin/kombify-node-init /usr/local/sbin/kombify-agent-supervisor
rm -f /etc/machine-id /var/lib/dbus/machine-id
# avahi: every node's avahi-daemon runs as the same uid on one kernel, so its default
# rlimit-nproc=3 would let only the first node or two start it.
sed -i 's/^rlimit-nproc=/#rlimit-nproc=/' /etc/avahi/avahi-daemon.conf
# `<name>.local` through avahi (libnss-mdns' postinst does this; make sure of it).
grep -q mdns4_minimal /etc/nsswitch.conf \
  || sed -i 's/^hosts:\s*files/hosts: files mdns4_minimal [NOTFOUND=return]/' /etc/nsswitch.conf
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/*.log /tmp/*
"""

DOCKERFILE = """FROM {base}
COPY kombify-node-init /usr/local/sbin/kombify-node-init
COPY kombify-agent-supervisor /usr/local/sbin/kombify-agent-supervisor
COPY sshd-kombify.conf /etc/ssh/sshd_config.d/kombify.conf
COPY setup.sh /tmp/kombify-setup.sh
RUN sh /tmp/kombify-setup.sh && rm -f /tmp/kombify-setup.sh
ENV container=docker
EXPOSE 22
STOPSIGNAL SIGTERM
CMD ["/usr/local/sbin/kombify-node-init"]
"""

# Used only when the engine can pull: the same packages as the debootstrap rootfs, from apt.
PULL_BASE_DOCKERFILE = """FROM debian:{suite}
RUN apt-get update \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends {packages} \\
 && rm -rf /var/lib/apt/lists/*
"""

HTTPD_INDEX = """<!doctype html>
<html><head><title>kombify test httpd</title></head>
<body><h1>kombify-test/httpd works</h1></body></html>
"""
