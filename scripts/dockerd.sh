#!/usr/bin/env bash
# Start and stop a private docker daemon for the sandbox tests (CI, machines without one).
# Usage: source scripts/dockerd.sh; start_dockerd DATA_ROOT; ...; stop_dockerd
# The daemon runs as root with no iptables, no bridge and the vfs storage driver, so it works
# inside a container or VM without kernel modules; its data root, pid file and socket live
# under DATA_ROOT, and DOCKER_HOST is exported so the docker CLI and SDK talk to it.
# stop_dockerd stops only a daemon this shell's start_dockerd started: one that was already
# answering at DATA_ROOT (someone else's) is used and left running.

start_dockerd() {
  local root="${1:?usage: start_dockerd DATA_ROOT}"
  mkdir -p "$root/data" "$root/exec" "$root/run"
  root="$(cd "$root" && pwd)"
  export RLVR_DOCKERD_ROOT="$root"
  export DOCKER_HOST="unix://$root/run/docker.sock"
  RLVR_DOCKERD_STARTED=""
  if docker version >/dev/null 2>&1; then
    echo "dockerd: already answering at $DOCKER_HOST (not ours: stop_dockerd leaves it running)"
    return 0
  fi
  dockerd --iptables=false --ip6tables=false --bridge=none --storage-driver=vfs \
    --data-root "$root/data" --exec-root "$root/exec" --pidfile "$root/run/docker.pid" \
    --host "$DOCKER_HOST" >"$root/dockerd.log" 2>&1 &
  RLVR_DOCKERD_STARTED="$!"
  local waited=0
  until docker version >/dev/null 2>&1; do
    if ! kill -0 "$RLVR_DOCKERD_STARTED" 2>/dev/null; then
      echo "dockerd: exited at start; last lines of $root/dockerd.log:" >&2
      tail -n 20 "$root/dockerd.log" >&2
      return 1
    fi
    if (( waited >= 60 )); then
      echo "dockerd: no answer after 60 s; see $root/dockerd.log" >&2
      return 1
    fi
    sleep 1
    waited=$((waited + 1))
  done
  echo "dockerd: running (pid $(cat "$root/run/docker.pid")), DOCKER_HOST=$DOCKER_HOST"
}

stop_dockerd() {
  local pid="${RLVR_DOCKERD_STARTED:-}"
  [[ -n "$pid" ]] || return 0
  RLVR_DOCKERD_STARTED=""
  # our sandbox containers first, so the daemon does not wait on them
  docker ps -aq --filter label=rlvr.sandbox 2>/dev/null | xargs -r docker rm -f >/dev/null 2>&1 || true
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 30); do
    kill -0 "$pid" 2>/dev/null || { echo "dockerd: stopped"; return 0; }
    sleep 1
  done
  echo "dockerd: still running after 30 s; killing it" >&2
  kill -9 "$pid" 2>/dev/null || true
}
