#!/usr/bin/env bash
# s3-server.sh — a throw-away, loopback-only S3 server for FogVault's tests: a real Ceph RADOS
# Gateway (Debian's packages) on a one-node cluster (1 monitor, 1 OSD on a sparse file, radosgw).
#
# Usage:
#   s3-server.sh install   # install the Debian packages if missing (apt-get), start nothing
#   s3-server.sh start     # start (idempotent: if already up, print the settings again)
#   s3-server.sh stop      # stop the daemons this script started (by PID) and delete the state dir
#   s3-server.sh status    # exit 0 if running and answering; print the settings
#   s3-server.sh env       # print the settings of the running server (exit 1 if not running)
#
# stdout of start/status/env is only KEY=VALUE lines, the settings FogVault reads:
#   set -a; eval "$(scripts/s3-server.sh start)"; set +a
#   fogvault ... s3://my-bucket/some/prefix     # FOGVAULT_S3_ENDPOINT + AWS_* from the env
# Progress and diagnostics go to stderr. A failed start stops what it started.
#
# Environment (all optional):
#   FOGVAULT_S3_DIR            state dir: config, logs, pids, data  (default /tmp/fogvault-s3; removed on stop)
#   FOGVAULT_S3_PORT           S3 port on 127.0.0.1, or 'auto' for a free one  (default 7480)
#   FOGVAULT_CEPH_MON_PORT     monitor port, or 'auto'; daemons use the next 99 ports  (default 40100)
#   FOGVAULT_S3_ACCESS_KEY / FOGVAULT_S3_SECRET_KEY   test-only credentials (defaults below)
#   FOGVAULT_CEPH_STORE        bluestore (sparse file) | memstore (RAM)  (default bluestore)
#   FOGVAULT_CEPH_BLUESTORE_BYTES  size of the sparse OSD file  (default 20 GiB, mostly unallocated)
#   FOGVAULT_S3_NO_INSTALL=1   never run apt-get: fail if the packages are missing
#   FOGVAULT_S3_TIMEOUT        seconds to wait for each daemon  (default 60)
#   FOGVAULT_S3_KEEP_ON_FAIL=1 leave a failed start's daemons and logs in place, to debug
set -euo pipefail

DIR=${FOGVAULT_S3_DIR:-/tmp/fogvault-s3}
AK=${FOGVAULT_S3_ACCESS_KEY:-FOGVAULTTESTKEY00001}
SK=${FOGVAULT_S3_SECRET_KEY:-fogvaultTestSecretKey0123456789abcdefXYZ}
REGION=us-east-1
STORE=${FOGVAULT_CEPH_STORE:-bluestore}
BLUESTORE_BYTES=${FOGVAULT_CEPH_BLUESTORE_BYTES:-21474836480}
TIMEOUT=${FOGVAULT_S3_TIMEOUT:-60}
PACKAGES=(ceph-mon ceph-osd radosgw ceph-common)
CONF="$DIR/ceph.conf"

T_START=$(($(date +%s%N) / 1000000))
log() { printf '[s3-server %6.2fs] %s\n' "$(($(date +%s%N) / 1000000 - T_START))e-3" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ------------------------------------------------------------------ helpers
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {  # free_port WANTED DEFAULT [AVOID] -> WANTED, DEFAULT, or for 'auto' a random
    # free port outside AVOID..AVOID+99 (the ports the Ceph daemons may bind)
    local p avoid=${3:--1000}
    if [[ $1 != auto ]]; then echo "${1:-$2}"; return; fi
    for _ in $(seq 1 50); do
        p=$((20000 + RANDOM % 39000))
        ((p >= avoid && p <= avoid + 99)) && continue
        port_busy "$p" || { echo "$p"; return; }
    done
    die "no free port found"
}

port() { cat "$DIR/port"; }
endpoint() { echo "http://127.0.0.1:$(port)"; }

http_up() {  # any HTTP answer on the endpoint counts (anonymous GET / is answered by radosgw)
    local line
    exec 3<>"/dev/tcp/127.0.0.1/$(port)" || return 1
    printf 'GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
    IFS= read -r -t 2 line <&3 || true
    exec 3<&-
    [[ $line == HTTP/* ]]
}

wait_for() {  # wait_for DESCRIPTION COMMAND...
    local what=$1; shift
    local end=$((SECONDS + TIMEOUT))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < end)) || { log "timed out after ${TIMEOUT}s waiting for $what"; return 1; }
        sleep 0.2
    done
}

ours() {  # ours PIDFILE -> 0 if the PID in it is alive and runs with our config file
    local pid
    [[ -s $1 ]] || return 1
    pid=$(cat "$1")
    [[ -r /proc/$pid/cmdline ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$CONF"
}

print_env() {
    cat <<EOF
FOGVAULT_S3_ENDPOINT=$(endpoint)
AWS_ACCESS_KEY_ID=$AK
AWS_SECRET_ACCESS_KEY=$SK
AWS_DEFAULT_REGION=$REGION
FOGVAULT_S3_DIR=$DIR
EOF
}

is_running() {
    local name
    [[ -f $DIR/port ]] || return 1
    for name in mon.a osd.0 rgw.a; do ours "$DIR/run/$name.pid" || return 1; done
    http_up
}

# ------------------------------------------------------------------ install
do_install() {
    local need=() p
    for p in ceph-mon ceph-osd radosgw ceph; do command -v "$p" >/dev/null || need+=("$p"); done
    ((${#need[@]} == 0)) && return 0
    [[ ${FOGVAULT_S3_NO_INSTALL:-0} == 1 ]] && die "missing ${need[*]} and FOGVAULT_S3_NO_INSTALL=1"
    local sudo="" apt_log="${TMPDIR:-/tmp}/fogvault-s3-apt.log"
    [[ $(id -u) == 0 ]] || sudo=sudo
    log "installing ${PACKAGES[*]} with apt-get (30-60 s)"
    apt_get() { $sudo env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 "$@" >>"$apt_log" 2>&1; }
    # a fresh machine has no package lists: update first if apt knows no candidate
    if ! apt-cache policy radosgw 2>/dev/null | grep -q 'Candidate: [0-9]'; then apt_get update || true; fi
    apt_get install -y --no-install-recommends "${PACKAGES[@]}" \
        || { apt_get update && apt_get install -y --no-install-recommends "${PACKAGES[@]}"; } \
        || { tail -5 "$apt_log" >&2; die "apt-get install ${PACKAGES[*]} failed; see $apt_log"; }
    log "installed"
}

# ------------------------------------------------------------------ stop
alive() {  # alive PID -> 0 if it exists and is not a zombie (PID 1 in a container may not reap)
    local st
    st=$(sed -E 's/^[0-9]+ \(.*\) ([A-Z]).*/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ $st != Z && $st != X ]]
}

any_alive() { local pid; for pid in "$@"; do alive "$pid" && return 0; done; return 1; }

wait_gone() {  # wait_gone TENTHS PID... -> 0 once none is alive, 1 after TENTHS x 0.1 s
    local n=$1; shift
    for _ in $(seq 1 "$n"); do any_alive "$@" || return 0; sleep 0.1; done
    ! any_alive "$@"
}

do_stop() {
    [[ -d $DIR ]] || { log "not running ($DIR absent)"; return 0; }
    # the data is thrown away: no clean shutdown needed, TERM all, KILL what is left after 1 s
    local name pids=()
    for name in rgw.a osd.0 mon.a; do
        ours "$DIR/run/$name.pid" && pids+=("$(cat "$DIR/run/$name.pid")")
    done
    if ((${#pids[@]})); then
        log "stopping pids ${pids[*]}"
        kill -TERM "${pids[@]}" 2>/dev/null || true
        wait_gone 10 "${pids[@]}" || kill -KILL "${pids[@]}" 2>/dev/null || true
        wait_gone 20 "${pids[@]}" || log "pids ${pids[*]} still alive after SIGKILL"
    fi
    case "$DIR" in / | /tmp | /root | /home | "") die "refusing to remove $DIR" ;; esac
    rm -rf -- "$DIR"
    log "stopped; removed $DIR"
}

# ------------------------------------------------------------------ start
write_conf() {  # write_conf FSID MON_PORT S3_PORT
    cat >"$CONF" <<EOF
; generated by s3-server.sh: one-node throw-away cluster, loopback only, no cephx
[global]
fsid = $1
mon host = v2:127.0.0.1:$2
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind ipv6 = false
ms bind msgr1 = false
ms bind port min = $(($2 + 1))
ms bind port max = $(($2 + 99))
auth cluster required = none
auth service required = none
auth client required = none
keyring = $DIR/keyring
run dir = $DIR/run
pid file = $DIR/run/\$name.pid
admin socket = $DIR/run/\$name.asok
log file = $DIR/log/\$name.log
log to stderr = false
err to stderr = false
mon cluster log file = $DIR/log/cluster.log
chdir = ""
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon max pg per osd = 1000
mon warn on pool no redundancy = false
mon data avail warn = 2
mon data avail crit = 1
mon osd full ratio = .99
mon osd backfillfull ratio = .99
mon osd nearfull ratio = .99
osd failsafe full ratio = .995
; one node needs no batching of map updates: makes pool and bucket creation fast
paxos propose interval = 0.05
paxos min wait = 0.01

[mon]
mon data = $DIR/mon.\$id

[osd]
osd data = $DIR/osd.\$id
osd objectstore = $STORE
osd crush initial weight = 1
osd max object name len = 460
osd max object namespace len = 64
osd check max object name len on startup = false
memstore device bytes = 8589934592
bluestore block create = true
bluestore block size = $BLUESTORE_BYTES
bluestore fsck on mount = false
osd memory target = 1073741824
osd op num shards = 1
osd op num threads per shard = 2

[client]
log file = $DIR/log/\$name.\$pid.log
admin socket = $DIR/run/\$name.\$pid.asok

[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$3
rgw data = $DIR/rgw.a
log file = $DIR/log/rgw.a.log
admin socket = $DIR/run/rgw.a.asok
pid file = $DIR/run/rgw.a.pid
rgw thread pool size = 64
; radosgw defaults to ms_mon_client_mode=secure, impossible without cephx
ms mon client mode = crc
rgw enable usage log = false
; a listing that sends MaxKeys gets pages of at most 100 keys (without it: 1000, as on AWS)
rgw max listing results = 100
; reclaim the space of deleted objects within a minute instead of 2 h
rgw gc obj min wait = 60
rgw gc processor period = 60
rgw dns name =
EOF
}

ceph_cli() { timeout 30 ceph -c "$CONF" --connect-timeout 10 "$@"; }
osd_up() { ceph_cli osd dump 2>/dev/null | grep -q '^osd.0 up'; }

start_cluster() {  # start_cluster MON_PORT
    local fsid uuid
    fsid=$(cat /proc/sys/kernel/random/uuid)
    write_conf "$fsid" "$1" "$(port)"
    log "mkfs and start mon.a (port $1)"
    ceph-authtool --create-keyring "$DIR/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
    monmaptool --create --clobber --fsid "$fsid" --addv a "[v2:127.0.0.1:$1]" "$DIR/monmap" >/dev/null
    ceph-mon -c "$CONF" --mkfs -i a --monmap "$DIR/monmap" --keyring "$DIR/keyring"
    ceph-mon -c "$CONF" -i a
    wait_for "ceph-mon" ceph_cli mon stat

    log "create and start osd.0 ($STORE)"
    uuid=$(cat /proc/sys/kernel/random/uuid)
    ceph_cli osd new "$uuid" 0 >/dev/null
    ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$uuid" >"$DIR/log/osd-mkfs.log" 2>&1 \
        || { tail -20 "$DIR/log/osd-mkfs.log" >&2; die "ceph-osd --mkfs failed"; }
    ceph-osd -c "$CONF" -i 0
    wait_for "osd.0 up" osd_up

    log "create the S3 user"  # radosgw-admin creates the rgw pools on first use
    timeout 90 radosgw-admin -c "$CONF" user create --uid=fogvault --display-name="fogvault tests" \
        --access-key="$AK" --secret-key="$SK" >"$DIR/log/user-create.json" 2>"$DIR/log/user-create.err" \
        || { tail -20 "$DIR/log/user-create.err" >&2; die "radosgw-admin user create failed"; }
    log "start radosgw on $(endpoint)"
    radosgw -c "$CONF" -n client.rgw.a
    wait_for "radosgw HTTP" http_up || { tail -20 "$DIR/log/rgw.a.log" >&2; die "radosgw did not answer"; }
}

do_start() {
    if is_running; then
        log "already running at $(endpoint)"
        print_env
        return 0
    fi
    [[ -e $DIR ]] && { log "cleaning leftovers of a previous run in $DIR"; do_stop; }
    do_install
    local s3_port mon_port
    mon_port=$(free_port "${FOGVAULT_CEPH_MON_PORT:-}" 40100)
    s3_port=$(free_port "${FOGVAULT_S3_PORT:-}" 7480 "$mon_port")
    port_busy "$s3_port" && die "port $s3_port on 127.0.0.1 is taken (set FOGVAULT_S3_PORT, or 'auto')"
    port_busy "$mon_port" && die "port $mon_port on 127.0.0.1 is taken (set FOGVAULT_CEPH_MON_PORT, or 'auto')"
    mkdir -p "$DIR"/{run,log,mon.a,osd.0,rgw.a}
    echo "$s3_port" >"$DIR/port"
    # on any failure from here on (set -e), stop what was started and remove the state dir
    trap 'rc=$?; if ((rc)) && [[ -z ${FOGVAULT_S3_KEEP_ON_FAIL:-} ]]; then log "start failed (rc=$rc): cleaning up"; do_stop || true; fi' EXIT
    local t0=$SECONDS
    start_cluster "$mon_port"
    trap - EXIT
    log "ready in $((SECONDS - t0)) s at $(endpoint)"
    print_env
}

case "${1:-}" in
    install) do_install ;;
    start) do_start ;;
    stop) do_stop ;;
    status) if is_running; then print_env; else log "not running"; exit 1; fi ;;
    env) if is_running; then print_env; else log "not running"; exit 1; fi ;;
    *) echo "usage: $0 install|start|stop|status|env" >&2; exit 2 ;;
esac
