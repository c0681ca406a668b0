#!/usr/bin/env bash
# sftp-server.sh — a throw-away, loopback-only SFTP server for FogVault's tests: Debian's OpenSSH
# sshd with its own config, throw-away host and client keys, all in a state dir.
#
# Usage:
#   sftp-server.sh install   # install openssh-server/-client if missing (apt-get), start nothing
#   sftp-server.sh start     # start (idempotent: if already up, print the settings again)
#   sftp-server.sh stop      # stop the sshd this script started (by PID, + its connection
#                            # processes) and delete the state dir
#   sftp-server.sh status    # exit 0 if running and an sftp login works; print the settings
#   sftp-server.sh env       # print the settings of the running server (exit 1 if not running)
#
# stdout of start/status/env is only KEY=VALUE lines:
#   SFTP_HOST SFTP_PORT SFTP_USER SFTP_ROOT SFTP_URL FOGVAULT_SFTP_KEY FOGVAULT_SFTP_KNOWN_HOSTS
#   FOGVAULT_SFTP_DIR SFTP_PID — e.g.  set -a; eval "$(scripts/sftp-server.sh start)"; set +a
#   then the target "$SFTP_URL/$SFTP_ROOT/repo" works with the key and known_hosts from the env.
#
# The server: sshd -D -e -f OUR_CONFIG as a background child (own session), ListenAddress
# 127.0.0.1, public-key auth only, UsePAM no, StrictModes no, Subsystem sftp internal-sftp. It logs
# in only the user running the script. /etc/ssh is neither read nor changed and the system sshd is
# never started. As root, sshd needs /run/sshd: it is created (0755) if missing — the only thing
# outside the state dir that is touched.
#
# Environment (all optional):
#   FOGVAULT_SFTP_DIR          state dir (config, keys, log, pid, data/)  (default /tmp/fogvault-sftp; removed on stop)
#   FOGVAULT_SFTP_PORT         port on 127.0.0.1, or 'auto'  (default 2222, or a free one if 2222 is taken)
#   FOGVAULT_SFTP_NO_INSTALL=1 never run apt-get: fail if sshd is missing
#   FOGVAULT_SFTP_TIMEOUT      seconds to wait for readiness  (default 20)
#   FOGVAULT_SFTP_LOGLEVEL     sshd LogLevel  (default INFO; VERBOSE or DEBUG1..3 to debug)
set -euo pipefail

DIR=${FOGVAULT_SFTP_DIR:-/tmp/fogvault-sftp}
TIMEOUT=${FOGVAULT_SFTP_TIMEOUT:-20}
LOGLEVEL=${FOGVAULT_SFTP_LOGLEVEL:-INFO}
HOST=127.0.0.1
SSHD=/usr/sbin/sshd
CFG="$DIR/sshd_config"
PIDF="$DIR/sshd.pid"
LOG="$DIR/sshd.log"
ME=$(id -un)

T_START=$(($(date +%s%N) / 1000000))
log() { printf '[sftp-server %5.2fs] %s\n' "$(($(date +%s%N) / 1000000 - T_START))e-3" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ------------------------------------------------------------------ processes and ports
alive() {  # alive PID -> 0 if it exists and is not a zombie (PID 1 in a container may not reap)
    local st
    st=$(sed -E 's/^[0-9]+ \(.*\) ([A-Z]).*/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ $st != Z && $st != X ]]
}
ours() {  # ours PID -> 0 if PID is an sshd started with our config file
    alive "$1" && tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF -- "-f $CFG"
}
descendants() {  # descendants PID: sshd forks a process tree per connection; it outlives the
    # listener. One pass over /proc, no external commands.
    local f line pid ppid p c
    local -A children=()
    for f in /proc/[0-9]*/stat; do
        read -r line <"$f" 2>/dev/null || continue
        pid=${f#/proc/}
        read -r _ ppid _ <<<"${line##*) }"  # the fields after "(command name) "
        children[$ppid]+=" ${pid%/stat}"
    done
    local todo=("$1")
    while ((${#todo[@]})); do
        p=${todo[0]}
        todo=("${todo[@]:1}")
        for c in ${children[$p]:-}; do echo "$c"; todo+=("$c"); done
    done
}
running_pid() { [[ -s $PIDF ]] && ours "$(cat "$PIDF")" && cat "$PIDF"; }
any_alive() { local pid; for pid in "$@"; do alive "$pid" && return 0; done; return 1; }
wait_gone() {  # wait_gone TENTHS PID... -> 0 once none is alive
    local n=$1; shift
    for _ in $(seq 1 "$n"); do any_alive "$@" || return 0; sleep 0.1; done
    ! any_alive "$@"
}

port_busy() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }
pick_port() {
    local want=${FOGVAULT_SFTP_PORT:-} p
    if [[ -z $want ]]; then port_busy 2222 || { echo 2222; return; }; want=auto; fi
    if [[ $want != auto ]]; then echo "$want"; return; fi
    for _ in $(seq 1 50); do
        p=$((20000 + RANDOM % 40000))
        port_busy "$p" || { echo "$p"; return; }
    done
    die "no free port found"
}

print_env() {
    local port
    port=$(cat "$DIR/port")
    cat <<EOF
SFTP_HOST=$HOST
SFTP_PORT=$port
SFTP_USER=$ME
SFTP_ROOT=$DIR/data
SFTP_URL=sftp://$ME@$HOST:$port
FOGVAULT_SFTP_KEY=$DIR/id_ed25519
FOGVAULT_SFTP_KNOWN_HOSTS=$DIR/known_hosts
FOGVAULT_SFTP_DIR=$DIR
SFTP_PID=$(cat "$PIDF")
EOF
}

ready() {  # handshake + key auth + the sftp subsystem, through ssh(1)
    ssh -q -o BatchMode=yes -o IdentitiesOnly=yes -o IdentityFile="$DIR/id_ed25519" \
        -o UserKnownHostsFile="$DIR/known_hosts" -o StrictHostKeyChecking=yes \
        -o ConnectTimeout=5 -p "$(cat "$DIR/port")" -s "$ME@$HOST" sftp </dev/null >/dev/null 2>&1
}

# ------------------------------------------------------------------ commands
do_install() {
    [[ -x $SSHD ]] && command -v ssh >/dev/null && command -v ssh-keygen >/dev/null && return 0
    [[ ${FOGVAULT_SFTP_NO_INSTALL:-0} == 1 ]] && die "$SSHD or ssh missing and FOGVAULT_SFTP_NO_INSTALL=1"
    local sudo="" apt_log="${TMPDIR:-/tmp}/fogvault-sftp-apt.log" pkgs=(openssh-server openssh-client)
    [[ $(id -u) == 0 ]] || sudo=sudo
    apt_get() { $sudo env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 "$@" >>"$apt_log" 2>&1; }
    log "installing ${pkgs[*]} with apt-get (~10 s)"
    # a fresh machine has no package lists: update first if apt knows no candidate.
    # Installing does not start the system sshd in a container (policy-rc.d); ours is separate.
    if ! apt-cache policy openssh-server 2>/dev/null | grep -q 'Candidate: [0-9]'; then apt_get update || true; fi
    apt_get install -y --no-install-recommends "${pkgs[@]}" \
        || { apt_get update && apt_get install -y --no-install-recommends "${pkgs[@]}"; } \
        || { tail -5 "$apt_log" >&2; die "apt-get install ${pkgs[*]} failed; see $apt_log"; }
    log "installed"
}

do_stop() {
    local pid="" kids
    [[ -s $PIDF ]] && pid=$(cat "$PIDF")
    if [[ -n $pid ]] && ours "$pid"; then
        kids=$(descendants "$pid" | tr '\n' ' ')
        log "stopping sshd pid $pid${kids:+ and its connection processes $kids}"
        # shellcheck disable=SC2086 # word splitting of the PID list is intended
        kill -TERM "$pid" $kids 2>/dev/null || true
        # shellcheck disable=SC2086
        wait_gone 30 "$pid" $kids || kill -KILL "$pid" $kids 2>/dev/null || true
    else
        log "not running"
    fi
    case "$DIR" in / | /tmp | /root | /home | "") die "refusing to remove $DIR" ;; esac
    rm -rf -- "$DIR"
}

write_config() {  # write_config PORT
    cat >"$CFG" <<EOF
# throw-away sshd for FogVault tests, generated by sftp-server.sh
Port $1
ListenAddress $HOST
HostKey $DIR/ssh_host_ed25519_key
PidFile $DIR/sshd.pid.sshd
AuthorizedKeysFile $DIR/authorized_keys
AllowUsers $ME
AuthenticationMethods publickey
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
HostbasedAuthentication no
PermitRootLogin prohibit-password
PermitEmptyPasswords no
UsePAM no
StrictModes no
UseDNS no
PrintMotd no
PrintLastLog no
X11Forwarding no
AllowTcpForwarding no
AllowAgentForwarding no
PermitTunnel no
# sshfs opens up to 10 channels per connection, and tests open several connections
MaxSessions 64
MaxStartups 100:30:200
LoginGraceTime 30
Subsystem sftp internal-sftp
LogLevel $LOGLEVEL
EOF
}

make_keys() {  # make_keys PORT
    ssh-keygen -q -t ed25519 -N '' -C fogvault-sftp-host -f "$DIR/ssh_host_ed25519_key"
    ssh-keygen -q -t ed25519 -N '' -C fogvault-sftp-client -f "$DIR/id_ed25519"
    cp "$DIR/id_ed25519.pub" "$DIR/authorized_keys"
    echo "[$HOST]:$1 $(cut -d' ' -f1,2 "$DIR/ssh_host_ed25519_key.pub")" >"$DIR/known_hosts"
}

do_start() {
    local pid port
    if pid=$(running_pid); then
        log "already running (pid $pid)"
        print_env
        return 0
    fi
    [[ -e $DIR ]] && { log "leftovers of a previous run in $DIR: cleaning"; do_stop; }
    do_install
    if [[ $(id -u) == 0 && ! -d /run/sshd ]]; then mkdir -p -m 0755 /run/sshd; fi
    mkdir -p -m 0700 "$DIR" "$DIR/data"
    port=$(pick_port)
    port_busy "$port" && die "port $port on $HOST is taken (set FOGVAULT_SFTP_PORT, or 'auto')"
    echo "$port" >"$DIR/port"
    make_keys "$port"
    write_config "$port"
    "$SSHD" -t -f "$CFG" || die "sshd -t rejected $CFG"
    # -D: no daemonising (we keep the PID), -e: log to stderr; setsid: own session
    setsid "$SSHD" -D -e -f "$CFG" </dev/null >>"$LOG" 2>&1 &
    echo $! >"$PIDF"
    local deadline=$((SECONDS + TIMEOUT))
    until grep -q "Server listening on $HOST port $port" "$LOG" 2>/dev/null; do
        alive "$(cat "$PIDF")" || { cat "$LOG" >&2; do_stop; die "sshd exited during start-up"; }
        ((SECONDS < deadline)) || { cat "$LOG" >&2; do_stop; die "sshd not listening after ${TIMEOUT}s"; }
        sleep 0.02
    done
    ready || { cat "$LOG" >&2; do_stop; die "sshd listens but an sftp login with the test key failed"; }
    log "sshd pid $(cat "$PIDF") on $HOST:$port, sftp login ok (user $ME)"
    print_env
}

case "${1:-}" in
    install) do_install ;;
    start) do_start ;;
    stop) do_stop ;;
    status) running_pid >/dev/null && ready && print_env || { log "not running"; exit 1; } ;;
    env) running_pid >/dev/null && print_env || { log "not running"; exit 1; } ;;
    *) echo "usage: $0 install|start|stop|status|env" >&2; exit 2 ;;
esac
