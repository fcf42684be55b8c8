#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for the tests and for trying the cluster path.
#
#   scripts/local-slurm.sh start    install slurm-wlm + munge when missing (as root), start
#                                   munged, slurmctld and slurmd, wait until the node is idle
#   scripts/local-slurm.sh stop     stop the daemons this script started (by their pid files)
#   scripts/local-slurm.sh status   say what runs and print the line to use the cluster
#
# Everything lives under $LOCAL_SLURM_DIR (default /tmp/mlip-local-slurm): slurm.conf, state,
# spool, logs and pid files. Nothing under /etc/slurm is written: the SLURM commands find the
# cluster through SLURM_CONF, e.g.  export SLURM_CONF=/tmp/mlip-local-slurm/slurm.conf
# `start` and `stop` are idempotent; `stop` never touches a daemon it did not start (a munged
# that was already running is reused and left running).
set -euo pipefail

STATE_DIR="${LOCAL_SLURM_DIR:-/tmp/mlip-local-slurm}"
CONF="$STATE_DIR/slurm.conf"
PIDS="$STATE_DIR/pids"
WAIT_SECONDS="${LOCAL_SLURM_WAIT:-60}"
MUNGE_SOCKET=/run/munge/munge.socket.2
# Open MPI (Debian's, which pw.x uses) starts under srun only through PMIx; SLURM's pmix
# plugin loads this library, which only libpmix-dev ships.
PMIX_LIBRARY=/usr/lib/x86_64-linux-gnu/pmix2/lib/libpmix.so

say() { echo "local-slurm: $*"; }
die() { echo "local-slurm: $*" >&2; exit 1; }

usage() {
    cat <<EOF
usage: $0 start|stop|status
  state folder: $STATE_DIR (set LOCAL_SLURM_DIR to change it)
  after start:  export SLURM_CONF=$CONF ; sinfo ; sbatch --wrap hostname
EOF
}

alive() {  # alive PIDFILE NAME: the pid in PIDFILE runs a process called NAME
    local pid
    [ -s "$1" ] || return 1
    pid="$(cat "$1")"
    [ -d "/proc/$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ]
}

install_packages() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
        && command -v munged >/dev/null && [ -e "$PMIX_LIBRARY" ]; then
        return
    fi
    [ "$(id -u)" -eq 0 ] || die "slurm-wlm, munge or libpmix-dev is missing; install as root"
    command -v apt-get >/dev/null || die "slurm-wlm, munge or libpmix-dev is missing; no apt-get"
    say "installing slurm-wlm, munge and libpmix-dev with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge libpmix-dev >/dev/null
}

start_munge() {
    if [ -S "$MUNGE_SOCKET" ] && munge -n </dev/null >/dev/null 2>&1; then
        say "munged already answers; reusing it"
        return
    fi
    local dir
    for dir in /run/munge /var/log/munge /var/lib/munge /etc/munge; do
        mkdir -p "$dir"
        chown munge:munge "$dir"
    done
    chmod 0700 /etc/munge /var/lib/munge /var/log/munge
    chmod 0755 /run/munge
    if [ ! -s /etc/munge/munge.key ]; then
        say "creating a munge key"
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
    runuser -u munge -- /usr/sbin/munged --force
    wait_for "munged" "munge -n </dev/null >/dev/null 2>&1"
    cp /run/munge/munged.pid "$PIDS/munged.pid"
}

write_conf() {
    local host cpus memory mpi=none
    [ -e "$PMIX_LIBRARY" ] && mpi=pmix
    host="$(hostname -s)"
    cpus="$(nproc)"
    memory="$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)"
    mkdir -p "$STATE_DIR/state" "$STATE_DIR/spool" "$STATE_DIR/log"
    cat >"$CONF" <<EOF
# Written by scripts/local-slurm.sh: one node, one partition, everything under $STATE_DIR.
ClusterName=mlip-local
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
MpiDefault=$mpi
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
StateSaveLocation=$STATE_DIR/state
SlurmdSpoolDir=$STATE_DIR/spool
SlurmctldPidFile=$PIDS/slurmctld.pid
SlurmdPidFile=$PIDS/slurmd.pid
SlurmctldLogFile=$STATE_DIR/log/slurmctld.log
SlurmdLogFile=$STATE_DIR/log/slurmd.log
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
KillWait=5
NodeName=$host CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
}

wait_for() {  # wait_for WHAT COMMAND: poll COMMAND until it succeeds or the deadline passes
    local deadline=$((SECONDS + WAIT_SECONDS))
    until eval "$2"; do
        [ "$SECONDS" -lt "$deadline" ] || die "$1 did not come up within ${WAIT_SECONDS}s"
        sleep 0.5
    done
}

node_idle() {
    SLURM_CONF="$CONF" sinfo -h -N -o '%T' 2>/dev/null | grep -qx 'idle'
}

start() {
    [ "$(id -u)" -eq 0 ] || die "start needs root (slurmctld and slurmd run as root here)"
    install_packages
    mkdir -p "$PIDS"
    if alive "$PIDS/slurmctld.pid" slurmctld && alive "$PIDS/slurmd.pid" slurmd; then
        say "already running"
        status
        return
    fi
    start_munge
    write_conf
    alive "$PIDS/slurmctld.pid" slurmctld || /usr/sbin/slurmctld -c -f "$CONF"
    alive "$PIDS/slurmd.pid" slurmd || /usr/sbin/slurmd -f "$CONF"
    wait_for "the node" node_idle
    say "node $(hostname -s) is idle"
    status
}

stop_one() {  # stop_one NAME: TERM the daemon in our pid file, wait, then KILL if needed
    local pidfile="$PIDS/$1.pid" pid
    if ! alive "$pidfile" "$1"; then
        rm -f "$pidfile"
        return
    fi
    pid="$(cat "$pidfile")"
    kill -TERM "$pid"
    for _ in $(seq 1 40); do
        [ -d "/proc/$pid" ] || break
        sleep 0.25
    done
    [ ! -d "/proc/$pid" ] || kill -KILL "$pid"
    rm -f "$pidfile"
    say "stopped $1 ($pid)"
}

stop() {
    [ -d "$PIDS" ] || { say "nothing to stop"; return; }
    if [ -f "$CONF" ] && alive "$PIDS/slurmctld.pid" slurmctld; then
        SLURM_CONF="$CONF" scancel --full --quiet --user="$(id -un)" 2>/dev/null || true
        # let slurmd end the jobs' step daemons (slurmstepd) before slurmd itself goes
        for _ in $(seq 1 80); do
            [ -z "$(SLURM_CONF="$CONF" squeue -h -o %i 2>/dev/null)" ] && break
            sleep 0.25
        done
    fi
    stop_one slurmd
    stop_one slurmctld
    stop_one munged
}

status() {
    local name state running=1
    for name in munged slurmctld slurmd; do
        state="not started by this script"
        if alive "$PIDS/$name.pid" "$name"; then state="running, pid $(cat "$PIDS/$name.pid")"; fi
        say "$name: $state"
    done
    alive "$PIDS/slurmctld.pid" slurmctld && alive "$PIDS/slurmd.pid" slurmd || running=0
    if [ "$running" -eq 1 ]; then
        SLURM_CONF="$CONF" sinfo -N -o '%N %T %c %m' || true
        say "use it with: export SLURM_CONF=$CONF"
        return 0
    fi
    return 3
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) usage; exit 2 ;;
esac
