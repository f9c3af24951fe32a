#!/usr/bin/env bash
# A throw-away one-node SLURM cluster on localhost, for tests. Run as root.
#
#   cluster.sh start   # munged + slurmctld + slurmd; waits for the node to be idle
#   cluster.sh stop    # cancels jobs, stops the daemons, waits until they are gone
#   cluster.sh status
#
# All state (config, munge key + socket, spool, logs, pid files) lives in
# $SLURM_TEST_DIR (default /tmp/lsml-slurm), so nothing in /etc is touched and a
# system-wide slurm/munge install is not used. Client commands (sbatch, squeue,
# submitit...) must see SLURM_CONF=$SLURM_TEST_DIR/slurm.conf: `start` prints the
# export line on stdout (everything else goes to stderr), so
#   eval "$(tests/slurm/cluster.sh start)"
# works. Ports can be moved with SLURM_TEST_CTLD_PORT / SLURM_TEST_SLURMD_PORT so
# that a test cluster does not collide with another one on the same machine.
set -euo pipefail

# munged/slurmctld/slurmd are in /usr/sbin, which a non-login PATH may lack.
export PATH="$PATH:/usr/sbin:/sbin"

DIR="${SLURM_TEST_DIR:-/tmp/lsml-slurm}"
CTLD_PORT="${SLURM_TEST_CTLD_PORT:-6817}"
SLURMD_PORT="${SLURM_TEST_SLURMD_PORT:-6818}"
CONF="$DIR/slurm.conf"
MUNGE_SOCKET="$DIR/munge/munge.socket"
export SLURM_CONF="$CONF"

log() { echo "cluster.sh: $*" >&2; }

# pid from a pid file, only if that process is alive and is the daemon we expect
# (guards against stale pid files whose pid was reused).
daemon_pid() { # name pidfile
    local pid
    [ -f "$2" ] || return 1
    pid="$(cat "$2" 2>/dev/null)" || return 1
    [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ] && echo "$pid"
}

write_conf() {
    local host cpus mem_mb
    host="$(hostname -s)"
    cpus="$(nproc)"
    # slurmd drains a node whose RealMemory exceeds what it detects, so stay below
    # the available memory.
    mem_mb=$(( $(awk '/^MemAvailable:/ {print $2}' /proc/meminfo) / 1024 - 512 ))
    [ "$mem_mb" -ge 512 ] || mem_mb=512
    # 127.0.0.1 explicitly: the short hostname may resolve to a non-loopback address.
    cat > "$CONF" <<EOF
ClusterName=lsml
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
# Our private munged, not the system one. cred_expire is also how long a requeued
# job waits before it may start again (default 120 s): keep requeue tests fast.
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET,cred_expire=10
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
# No cgroups: they are not available (or not delegated) in containers/sandboxes.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
MailProg=/bin/true
SchedulerType=sched/backfill
# Run the main scheduler every 2 s (default 60 s): a requeued job becomes eligible
# only after cred_expire, and would otherwise wait for the next periodic pass.
SchedulerParameters=sched_interval=2
# CR_CPU: memory is not a consumable, so jobs without --mem don't each claim the
# whole node's memory (which would serialize job arrays).
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
PreemptType=preempt/none
JobRequeue=1
ReturnToService=2
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

print_logs() {
    local f
    for f in "$DIR"/log/*.log; do
        [ -f "$f" ] || continue
        echo "===== $f (last 40 lines) =====" >&2
        tail -n 40 "$f" >&2
    done
}

node_state() { sinfo -h -N -o %T 2>/dev/null | head -n 1; }

start() {
    if daemon_pid slurmctld "$DIR/run/slurmctld.pid" >/dev/null; then
        log "already running in $DIR"
        echo "export SLURM_CONF=$CONF"
        return 0
    fi
    # munged refuses key/socket dirs that others can write to: keep everything 0700.
    mkdir -p "$DIR"/{munge,state,spool,run,log}
    chmod 700 "$DIR" "$DIR"/{munge,state,spool,run,log}
    write_conf

    if [ ! -f "$DIR/munge/munge.key" ]; then
        dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
        chmod 400 "$DIR/munge/munge.key"
    fi
    # -f: munged otherwise refuses to run as root.
    munged -f --key-file="$DIR/munge/munge.key" --socket="$MUNGE_SOCKET" \
        --pid-file="$DIR/run/munged.pid" --log-file="$DIR/log/munged.log" \
        --seed-file="$DIR/munge/munge.seed"

    slurmctld -f "$CONF"
    slurmd -f "$CONF"

    local deadline=$(( SECONDS + ${SLURM_TEST_START_TIMEOUT:-60} )) state=""
    while [ $SECONDS -lt $deadline ]; do
        state="$(node_state)"
        [ "$state" = idle ] && { log "node idle ($DIR)"; echo "export SLURM_CONF=$CONF"; return 0; }
        sleep 1
    done
    log "node not idle after timeout (state: '${state:-none}')"
    sinfo -N -l >&2 || true
    print_logs
    stop
    return 1
}

stop() {
    # Cancel jobs first so their slurmstepd and job processes exit with them.
    if daemon_pid slurmctld "$DIR/run/slurmctld.pid" >/dev/null; then
        scancel --partition=debug 2>/dev/null || true
        local deadline=$(( SECONDS + 15 ))
        while [ $SECONDS -lt $deadline ] && [ -n "$(squeue -h -t R,CG -o %i 2>/dev/null)" ]; do
            sleep 0.5
        done
    fi
    local name pid pids=()
    for name in slurmd slurmctld munged; do
        pid="$(daemon_pid "$name" "$DIR/run/$name.pid")" || continue
        kill -TERM "$pid" 2>/dev/null && pids+=("$pid")
    done
    # Leftover slurmstepd of this cluster (it inherits SLURM_CONF from our slurmd).
    for pid in $(pgrep -x slurmstepd || true); do
        grep -qzx "SLURM_CONF=$CONF" "/proc/$pid/environ" 2>/dev/null \
            && kill -KILL "$pid" 2>/dev/null && pids+=("$pid")
    done
    local deadline=$(( SECONDS + 20 ))
    for pid in "${pids[@]}"; do
        while kill -0 "$pid" 2>/dev/null; do
            if [ $SECONDS -ge $deadline ]; then kill -KILL "$pid" 2>/dev/null || true; fi
            sleep 0.2
        done
    done
    rm -f "$DIR"/run/*.pid
    log "stopped ($DIR)"
}

status() {
    local name pid rc=0
    for name in munged slurmctld slurmd; do
        if pid="$(daemon_pid "$name" "$DIR/run/$name.pid")"; then
            echo "$name: running (pid $pid)"
        else
            echo "$name: not running"; rc=1
        fi
    done
    [ $rc = 0 ] && sinfo -N -l
    return $rc
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
