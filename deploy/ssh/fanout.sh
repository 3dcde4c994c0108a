#!/usr/bin/env bash
# deploy/ssh/fanout.sh: a sharded run on a handful of hosts over plain ssh, with GNU parallel.
# See deploy/ssh/README.md.
#
#   deploy/ssh/fanout.sh [OPTIONS] SCENARIO N SERVER [HOST...] [-- LOADGEN FLAGS...]
#
# Picks START_AT a few seconds ahead, copies the scenario to every host, starts `loadgen serve`
# on SERVER, starts generator shard i of N on HOST[i mod H] (all at once; the first shard to
# fail stops the others, as Slurm's --kill-on-bad-exit does), waits, copies every part back
# and runs `loadgen merge` here. Nothing of ours runs on the hosts but the loadgen itself.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: deploy/ssh/fanout.sh [OPTIONS] SCENARIO N SERVER [HOST...] [-- LOADGEN FLAGS...]

  SCENARIO   the scenario file; copied to every host (a `kind = "directory"` site's files are
             not: they must already be at the same place on the server's host)
  N          generator shards; shard i runs on HOST[i mod the number of hosts]
  SERVER     the server's host, as ssh names it
  HOST...    the generators' hosts, as ssh names them [default: $HOSTS, space-separated]
  -- FLAGS   given to `serve` and to every `run` alike (e.g. --duration 10s --warmup 2s)

options:
  --server-ip IP     where the generators reach the server (the loadgen resolves no names)
                     [default: SERVER when it is an IP address, else its first address
                     from `getent ahosts` here]
  --port PORT        the server's port [8080]
  --lead SECONDS     START_AT is now plus this: time for ssh to reach every host [30]
  --loadgen PATH     the loadgen on the hosts [loadgen, found in the remote PATH]
  --remote-dir DIR   the hosts' working directory [/tmp/afterburner-fanout]
  --out DIR          where the parts and the merged run go here [runs/fanout]
  --merge-with PATH  the loadgen that merges, here [target/release/loadgen, else loadgen]
  --dry-run          print the commands instead of running them
  -h, --help         this text

environment: SSH (the remote shell command, default `ssh -o BatchMode=yes`), SCP (the copy
command, default `scp -q -o BatchMode=yes`; `rsync -a` works too), HOSTS.

Exit status: loadgen merge's (0 a valid run, 3 merged but invalid, 2 refused, 4 not written);
1 when a part or a copy failed (the parts that exist are still merged, to say what was
measured); 2 also for a bad command line.
EOF
}

die_usage() {
    echo "fanout.sh: $*" >&2
    echo "run deploy/ssh/fanout.sh --help for the usage" >&2
    exit 2
}

server_ip="" port=8080 lead=30 remote_loadgen=loadgen remote_dir=/tmp/afterburner-fanout
out=runs/fanout merge_with="" dry_run=0
positional=() flags=()
while [[ $# -gt 0 ]]; do
    case $1 in
        --server-ip) server_ip=${2:?--server-ip needs a value}; shift 2 ;;
        --port) port=${2:?--port needs a value}; shift 2 ;;
        --lead) lead=${2:?--lead needs a value}; shift 2 ;;
        --loadgen) remote_loadgen=${2:?--loadgen needs a value}; shift 2 ;;
        --remote-dir) remote_dir=${2:?--remote-dir needs a value}; shift 2 ;;
        --out) out=${2:?--out needs a value}; shift 2 ;;
        --merge-with) merge_with=${2:?--merge-with needs a value}; shift 2 ;;
        --dry-run) dry_run=1; shift ;;
        -h | --help) usage; exit 0 ;;
        --) shift; flags=("$@"); break ;;
        -*) die_usage "unknown option $1" ;;
        *) positional+=("$1"); shift ;;
    esac
done
[[ ${#positional[@]} -ge 3 ]] || die_usage "needs SCENARIO N SERVER [HOST...]"
scenario=${positional[0]} shards=${positional[1]} server=${positional[2]}
hosts=("${positional[@]:3}")
if [[ ${#hosts[@]} -eq 0 ]]; then
    read -r -a hosts <<<"${HOSTS:-}"
fi
[[ ${#hosts[@]} -gt 0 ]] || die_usage "no generator hosts: give HOST... or set HOSTS"
[[ -f $scenario ]] || die_usage "no scenario file $scenario"
[[ $shards =~ ^[1-9][0-9]*$ ]] || die_usage "N must be a whole number >= 1, not $shards"
[[ $port =~ ^[0-9]+$ && $port -ge 1 && $port -le 65535 ]] || die_usage "--port must be 1-65535, not $port"
[[ $lead =~ ^[0-9]+$ ]] || die_usage "--lead must be whole seconds, not $lead"
if [[ -z $server_ip ]]; then
    if [[ $server =~ ^[0-9.]+$ || $server == *:* ]]; then
        server_ip=$server
    else
        server_ip=$(getent ahosts "${server#*@}" | awk 'NR == 1 { print $1 }') || true
        [[ -n $server_ip ]] || die_usage "cannot resolve $server here: give --server-ip"
    fi
fi
if [[ $server_ip == *:* ]]; then
    listen="[$server_ip]:$port"
else
    listen="$server_ip:$port"
fi
if [[ -z $merge_with ]]; then
    merge_with=loadgen
    [[ -x target/release/loadgen ]] && merge_with=target/release/loadgen
fi
read -r -a ssh_command <<<"${SSH:-ssh -o BatchMode=yes}"
read -r -a scp_command <<<"${SCP:-scp -q -o BatchMode=yes}"
if [[ $dry_run -eq 0 ]]; then
    command -v parallel >/dev/null || die_usage "GNU parallel is missing (Debian: apt-get install parallel)"
    command -v "${ssh_command[0]}" >/dev/null || die_usage "no ${ssh_command[0]} (Debian: openssh-client)"
fi

start_at=$(($(date +%s) + lead))
run_name="$(basename "$scenario" .toml)-$start_at"
remote_run="$remote_dir/$run_name"
remote_scenario="$remote_run/$(basename "$scenario")"
local_run="$out/$run_name"
target="http://$listen/"
# The process name a pid file must still belong to before it is signalled (comm: 15 bytes).
remote_comm=$(basename "$remote_loadgen" | cut -c1-15)

# A word for the remote POSIX shell: as it is when it holds no special character, else
# single-quoted, so nothing in it is expanded there.
quote() {
    if [[ -n $1 && $1 =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then
        printf '%s' "$1"
    else
        printf "'%s'" "${1//\'/\'\\\'\'}"
    fi
}
quote_all() {
    local word line=""
    for word in "$@"; do
        line+="$(quote "$word") "
    done
    printf '%s' "${line% }"
}
# Runs a command, or prints it under --dry-run.
run() {
    if [[ $dry_run -eq 1 ]]; then
        quote_all "$@"
        echo
    else
        "$@"
    fi
}
# The remote command that records its pid (for stop_remote) and becomes the loadgen.
remote_part() {
    local pidfile=$1
    shift
    printf 'mkdir -p %s && echo $$ > %s && exec %s' \
        "$(quote "$remote_run")" "$(quote "$remote_run/$pidfile")" "$(quote_all "$@")"
}
# Stops a part still running after another failed: SIGTERM (it writes what it measured, marked
# interrupted), and only if the pid is still that loadgen.
stop_remote() {
    local host=$1 pidfile=$2
    run "${ssh_command[@]}" "$host" "pid=\$(cat $(quote "$remote_run/$pidfile") 2>/dev/null) \
&& [ \"\$(cat /proc/\$pid/comm 2>/dev/null)\" = $(quote "$remote_comm") ] && kill -TERM \$pid; true"
}

echo "fanout: $run_name: server on $server ($listen), $shards shards on ${hosts[*]}," \
    "START_AT $start_at ($(date -u -d "@$start_at" +%FT%TZ))"

# 1. The scenario on every host (once per host).
declare -A seen
for host in "$server" "${hosts[@]}"; do
    [[ -n ${seen[$host]:-} ]] && continue
    seen[$host]=1
    if [[ $dry_run -eq 1 ]]; then
        echo "$(quote_all "${ssh_command[@]}" "$host" "mkdir -p $(quote "$remote_run") && cat > $(quote "$remote_scenario")") < $(quote "$scenario")"
    else
        "${ssh_command[@]}" "$host" "mkdir -p $(quote "$remote_run") && cat > $(quote "$remote_scenario")" \
            <"$scenario" || {
            echo "fanout: copying the scenario to $host failed: nothing started" >&2
            exit 1
        }
    fi
done

# 2. The server, in the background; its lines prefixed with `server`.
server_command=$(remote_part server.pid "$remote_loadgen" serve "$remote_scenario" --listen "$listen" \
    --start-at "$start_at" --out "$remote_dir/out" --run-dir "$remote_run/server" --quiet \
    ${flags[@]+"${flags[@]}"})
server_pid=""
if [[ $dry_run -eq 1 ]]; then
    echo "$(quote_all "${ssh_command[@]}" "$server" "$server_command") &"
else
    "${ssh_command[@]}" "$server" "$server_command" </dev/null > >(sed -u 's/^/server\t/') 2>&1 &
    server_pid=$!
fi

# 3. The shards, all at once: shard i on hosts[i mod H]. --halt now,fail=1 stops the others as
# soon as one fails; --link pairs the i-th host, index and command (the hosts list repeated).
shard_hosts=() indices=() commands=()
for ((i = 0; i < shards; i++)); do
    shard_hosts+=("${hosts[i % ${#hosts[@]}]}")
    indices+=("$i")
    commands+=("$(remote_part "shard-$i.pid" "$remote_loadgen" run "$remote_scenario" \
        --shard "$i/$shards" --start-at "$start_at" --target "$target" --out "$remote_dir/out" \
        --run-dir "$remote_run/shard-$i-of-$shards" --quiet ${flags[@]+"${flags[@]}"})")
done
failed=0
run parallel --jobs "$shards" --halt now,fail=1 --line-buffer --link \
    --tagstring "{1} shard {2}/$shards" "${ssh_command[@]}" "{1}" "{3}" \
    ::: "${shard_hosts[@]}" ::: "${indices[@]}" ::: "${commands[@]}" </dev/null || failed=1
if [[ $failed -eq 1 ]]; then
    echo "fanout: a shard failed: stopping the other parts" >&2
    for ((i = 0; i < shards; i++)); do
        stop_remote "${shard_hosts[i]}" "shard-$i.pid"
    done
    stop_remote "$server" server.pid
fi
if [[ -n $server_pid ]] && ! wait "$server_pid"; then
    echo "fanout: the server's part failed" >&2
    failed=1
fi

# 4. The parts back here, then the merge.
run mkdir -p "$local_run"
for ((i = 0; i < shards; i++)); do
    run "${scp_command[@]}" -r "${shard_hosts[i]}:$remote_run/shard-$i-of-$shards" "$local_run/" || failed=1
done
run "${scp_command[@]}" -r "$server:$remote_run/server" "$local_run/" || failed=1
merge_status=0
run "$merge_with" merge "$local_run" || merge_status=$?
if [[ $failed -eq 1 ]]; then
    echo "fanout: a part or a copy failed; merged what there was: $local_run" >&2
    exit 1
fi
exit "$merge_status"
