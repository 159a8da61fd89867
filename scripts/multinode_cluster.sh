#!/usr/bin/env bash
# Emulate a small cluster of N nodes on this one machine, for running MPI jobs across "nodes".
#
#   scripts/multinode_cluster.sh up DIR N            start nodes n1..nN (N >= 2), state under DIR
#   scripts/multinode_cluster.sh down DIR            stop every process on those nodes, by PID
#   scripts/multinode_cluster.sh exec DIR NODE CMD...  run CMD on NODE (argv as given, this cwd and env)
#   scripts/multinode_cluster.sh agent DIR [SSH-OPTIONS] NODE COMMAND...
#                                                    what a launcher calls instead of ssh (DIR/agent)
#
# A node is a set of Linux namespaces held open by one sleeping process: its own network
# (one interface, eth0, on a private subnet), its own hostname (UTS), its own mount namespace
# in which /etc/hosts names every node, /dev/shm is a fresh tmpfs and
# /proc/sys/kernel/random/boot_id reads a value of its own (MPICH counts two processes as on one
# node when their boot ids agree, and would then use shared memory between them), and its own
# System V IPC. The nodes' interfaces meet on a bridge in a further network namespace, so the
# subnet (MULTINODE_SUBNET, default 10.251.7; node i is .i) exists only inside these namespaces:
# the machine's own network is not touched, and nothing outside can reach the nodes. The
# file system, users and processes stay shared (like a cluster's shared home directory), so one
# virtual environment serves every node; only /dev/shm is node-local.
#
# Launchers start remote processes through DIR/agent, which behaves like ssh: it enters the node
# and runs the command through a shell in the home directory, with a fresh login-like
# environment (HOME, USER, LOGNAME, a system PATH), so a launcher that relies on ssh to forward
# its environment fails here as it would on a cluster.
#   MPICH (hydra):  mpiexec -launcher ssh -launcher-exec DIR/agent -f DIR/hostfile -n 4 ...
#   Open MPI 5:     mpirun --prtemca plm_ssh_agent DIR/agent --host n1,n2 --bind-to none -n 4 ...
# Run the launcher itself on a node (`exec DIR n1 mpiexec ...`): the machine's own network
# namespace has no route to the nodes.
#
# `up` exits with status 3 and the reason when namespaces cannot be made here (not root, no
# unshare/nsenter/ip, a kernel or container that refuses), so that a test target can skip.
# Everything it starts is recorded under DIR (PID files); `down` ends those processes and every
# process that has entered a node since, and the namespaces vanish with their last process.
set -euo pipefail

script=$(readlink -f "$0")
subnet=${MULTINODE_SUBNET:-10.251.7}
login_path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

usage() {
    echo "usage: $0 up DIR N | down DIR | exec DIR NODE CMD... | agent DIR [SSH-OPTIONS] NODE COMMAND..." >&2
    exit 2
}
cannot() { echo "multinode_cluster.sh: cannot emulate nodes here: $*" >&2; exit 3; }
fail() { echo "multinode_cluster.sh: $*" >&2; exit 1; }

running() {  # running PID: alive and not a zombie (an orphan's parent may reap it late)
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }  # the fields after the command's name, which may hold spaces
    [ -n "$stat" ] && [ "${stat%% *}" != Z ]
}

node_pid() {  # node_pid DIR NODE: the PID holding NODE's namespaces, or fail
    local file="$1/$2/holder.pid" pid
    [ -s "$file" ] || fail "no node $2 under $1 (is the cluster up?)"
    pid=$(cat "$file")
    running "$pid" || fail "node $2 is down (its holder, PID $pid, has ended)"
    echo "$pid"
}

enter() {  # enter PID ARGS...: nsenter into every namespace a node has
    local pid=$1
    shift
    nsenter --target "$pid" --net --uts --mount --ipc "$@"
}

wait_for_file() {  # wait_for_file SECONDS FILE
    for _ in $(seq $(($1 * 20))); do
        [ -e "$2" ] && return 0
        sleep 0.05
    done
    return 1
}

start_holder() {  # start_holder DIR NAME [NODE-SETUP]: a sleeping process in new namespaces
    local dir=$1 name=$2 setup=${3:-} pid
    mkdir -p "$dir/$name"
    rm -f "$dir/$name/ready"
    # setsid: the holder outlives this script and no terminal signal reaches it.
    setsid unshare --net --uts --mount --ipc --propagation private \
        bash -c "$setup"'
            touch "$0/ready"
            exec sleep infinity' "$dir/$name" </dev/null >"$dir/$name/holder.log" 2>&1 &
    pid=$!
    echo "$pid" > "$dir/$name/holder.pid"
    if ! wait_for_file 10 "$dir/$name/ready"; then
        cat "$dir/$name/holder.log" >&2 || true
        return 1
    fi
}

up() {
    local dir=$1 n=$2 i
    [[ $n =~ ^[0-9]+$ ]] && [ "$n" -ge 2 ] && [ "$n" -le 200 ] || fail "N must be a number from 2 to 200, not $n"
    [ "$(id -u)" -eq 0 ] || cannot "namespaces, mounts and interfaces need root"
    for tool in unshare nsenter ip setsid mount hostname; do
        command -v "$tool" >/dev/null || cannot "the command $tool is missing"
    done
    unshare --net --uts --mount --ipc --propagation private true 2>/dev/null \
        || cannot "unshare --net --uts --mount --ipc is refused (a container without CAP_SYS_ADMIN?)"
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    [ ! -e "$dir/bridge/holder.pid" ] || fail "$dir already holds a cluster; bring it down first"

    {
        echo "127.0.0.1 localhost"
        for i in $(seq "$n"); do echo "$subnet.$i n$i"; done
    } > "$dir/hosts"
    : > "$dir/hostfile"
    for i in $(seq "$n"); do echo "n$i" >> "$dir/hostfile"; done
    printf '#!/bin/sh\nexec %q agent %q "$@"\n' "$script" "$dir" > "$dir/agent"
    chmod +x "$dir/agent"

    # The switch: a bridge in a namespace of its own.
    start_holder "$dir" bridge || cannot "the bridge namespace did not start"
    local bridge
    bridge=$(cat "$dir/bridge/holder.pid")
    nsenter --target "$bridge" --net ip link add br0 type bridge \
        || { down "$dir"; cannot "a bridge interface cannot be made (no bridge support in this kernel?)"; }
    nsenter --target "$bridge" --net ip link set br0 up

    for i in $(seq "$n"); do
        local node=n$i pid
        mkdir -p "$dir/$node"
        cat /proc/sys/kernel/random/uuid > "$dir/$node/boot_id"
        # Inside the node's new namespaces, before it reports ready.
        local setup='
            set -e
            hostname '"$node"'
            mount --bind "$0/../hosts" /etc/hosts
            mount -t tmpfs -o mode=1777,size=50% tmpfs /dev/shm
            mount --bind "$0/boot_id" /proc/sys/kernel/random/boot_id
            ip link set lo up'
        start_holder "$dir" "$node" "$setup" || { down "$dir"; cannot "node $node did not start"; }
        pid=$(cat "$dir/$node/holder.pid")
        # A veth pair made inside the bridge's namespace, one end moved straight into the node:
        # no interface ever appears in the machine's own namespace.
        nsenter --target "$bridge" --net ip link add "v$i" type veth peer name eth0 netns "$pid" \
            || { down "$dir"; cannot "a veth pair cannot be made"; }
        nsenter --target "$bridge" --net ip link set "v$i" master br0 up
        nsenter --target "$pid" --net ip addr add "$subnet.$i/24" dev eth0
        nsenter --target "$pid" --net ip link set eth0 up
    done

    # Every node reaches every other before `up` returns: a TCP connection to a closed port is
    # refused (an answer came back) where the network works, and times out where it does not.
    for i in $(seq "$n"); do
        local pid
        pid=$(cat "$dir/n$i/holder.pid")
        for j in $(seq "$n"); do
            local tries=0
            until [[ $(enter "$pid" timeout 2 bash -c "exec 3<>/dev/tcp/n$j/9" 2>&1) == *refused* ]]; do
                tries=$((tries + 1))
                [ "$tries" -lt 10 ] || { down "$dir"; fail "n$i cannot reach n$j"; }
                sleep 0.1
            done
        done
    done
    echo "$n" > "$dir/size"
    echo "multinode_cluster.sh: nodes n1..n$n up on $subnet.0/24; agent $dir/agent, hostfile $dir/hostfile" >&2
}

processes_in() {  # processes_in HOLDER-PID...: every PID in those holders' network namespaces
    local holder namespaces=()
    for holder in "$@"; do
        namespaces+=("$(readlink "/proc/$holder/ns/net" 2>/dev/null)") || true
    done
    # One listing of every process's namespace link (no command per process).
    ls -l /proc/[0-9]*/ns/net 2>/dev/null | awk -v wanted="${namespaces[*]}" '
        BEGIN { n = split(wanted, list, " "); for (i = 1; i <= n; i++) want[list[i]] = 1 }
        ($NF in want) { split($(NF - 2), path, "/"); print path[3] }'
}

down() {
    local dir=$1 file pids=() holders=() pid
    [ -d "$dir" ] || return 0
    dir=$(cd "$dir" && pwd)
    for file in "$dir"/*/holder.pid; do
        [ -s "$file" ] || continue
        pid=$(cat "$file")
        # Only a process that is still our holder: the same command line as we started.
        if running "$pid" && grep -qa 'sleep' "/proc/$pid/cmdline" 2>/dev/null; then
            holders+=("$pid")
        fi
    done
    [ "${#holders[@]}" -eq 0 ] || mapfile -t pids < <(processes_in "${holders[@]}")
    if [ "${#pids[@]}" -gt 0 ]; then
        kill -TERM "${pids[@]}" 2>/dev/null || true
        for _ in $(seq 50); do
            local alive=0
            for pid in "${pids[@]}"; do running "$pid" && alive=1; done
            [ "$alive" -eq 0 ] && break
            sleep 0.1
        done
        kill -KILL "${pids[@]}" 2>/dev/null || true
    fi
    rm -f "$dir"/*/holder.pid "$dir"/*/ready "$dir/size"
}

agent() {  # agent DIR [ssh options] NODE COMMAND...: ssh's calling convention
    local dir=$1 pid
    shift
    while [ $# -gt 0 ]; do
        case $1 in
            -[bcDEeFIiJLlmOopQRSWw]) shift 2 ;;  # ssh options that take a value
            -[bcDEeFIiJLlmOopQRSWw]?*|-*) shift ;;
            *) break ;;
        esac
    done
    [ $# -ge 2 ] || fail "agent: usage: agent DIR [ssh options] NODE COMMAND..."
    local node=$1
    shift
    pid=$(node_pid "$dir" "$node")
    # ssh joins its arguments into one command line for the remote shell.
    exec nsenter --target "$pid" --net --uts --mount --ipc --wd="${HOME:-/}" \
        env -i HOME="${HOME:-/}" USER="$(id -un)" LOGNAME="$(id -un)" PATH="$login_path" \
        /bin/sh -c "$*"
}

run_on() {  # exec DIR NODE CMD...: CMD's argv as given, in this directory, with this environment
    local dir=$1 node=$2 pid
    shift 2
    [ $# -ge 1 ] || usage
    pid=$(node_pid "$dir" "$node")
    exec nsenter --target "$pid" --net --uts --mount --ipc --wd="$PWD" "$@"
}

[ $# -ge 2 ] || usage
action=$1
case $action in
    up) [ $# -eq 3 ] || usage; up "$2" "$3" ;;
    down) [ $# -eq 2 ] || usage; down "$2" ;;
    exec) [ $# -ge 4 ] || usage; run_on "${@:2}" ;;
    agent) agent "${@:2}" ;;
    *) usage ;;
esac
