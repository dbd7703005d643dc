#!/bin/sh
# Runs ComfyUI and the worker in one container (the image's `comfyui` target):
#   - ComfyUI on 127.0.0.1:$COMFYUI_PORT with the flags worker-comfyui uses
#     (--disable-auto-launch --disable-metadata --verbose $COMFY_LOG_LEVEL --log-stdout),
#     restarted whenever it dies (the worker fails the job that was running and goes on with the
#     next once ComfyUI is back);
#   - the worker; when it exits, ComfyUI is stopped and the script exits with the worker's status
#     (the container's restart policy takes over);
#   - SIGTERM / SIGINT: the worker is stopped first (it may finish its running job, which needs
#     ComfyUI), then ComfyUI; exit with the worker's status.
# Every variable is in the README ("Docker" and "Environment variables"). POSIX sh: ComfyUI images
# are not all bash images.
set -u

log() {
  printf '%s start.sh: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2
}

fail() {
  log "$*"
  exit 2
}

# Signals are noted from the start, so that one arriving while children start is not lost.
stop_signal=''
trap 'stop_signal=TERM' TERM
trap 'stop_signal=INT' INT
trap 'stop_signal=HUP' HUP

COMFY_LOG_LEVEL=$(printf '%s' "${COMFY_LOG_LEVEL:-DEBUG}" | tr '[:lower:]' '[:upper:]')
case "$COMFY_LOG_LEVEL" in
  DEBUG | INFO | WARNING | ERROR | CRITICAL) ;;
  *) fail "COMFY_LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, got '$COMFY_LOG_LEVEL'" ;;
esac
export COMFY_LOG_LEVEL

APP_DIR=${APP_DIR:-$(CDPATH='' cd -- "$(dirname -- "$0")/.." && pwd)}
COMFYUI_DIR=${COMFYUI_DIR:-/comfyui}
COMFYUI_CMD=${COMFYUI_CMD:-python -u main.py}
COMFYUI_ARGS=${COMFYUI_ARGS:-}
COMFYUI_PORT=${COMFYUI_PORT:-8188}
COMFYUI_RESTART_DELAY_S=${COMFYUI_RESTART_DELAY_S:-1}
WORKER_CMD=${WORKER_CMD:-node --enable-source-maps --optimize-for-size --expose-gc $APP_DIR/dist/worker/main.js}

case "$COMFYUI_PORT" in '' | *[!0-9]*) fail "COMFYUI_PORT must be a port number, got '$COMFYUI_PORT'" ;; esac
case "$COMFYUI_RESTART_DELAY_S" in
  '' | *[!0-9]*) fail "COMFYUI_RESTART_DELAY_S must be a whole number of seconds, got '$COMFYUI_RESTART_DELAY_S'" ;;
esac
[ -d "$COMFYUI_DIR" ] || fail "COMFYUI_DIR $COMFYUI_DIR is not a folder (where ComfyUI's main.py is)"

# The worker finds ComfyUI where this script starts it, unless told otherwise.
if [ -z "${COMFYUI_API_BASE:-}" ] && [ -z "${COMFY_HOST:-}" ]; then
  COMFYUI_API_BASE="http://127.0.0.1:$COMFYUI_PORT"
  export COMFYUI_API_BASE
fi

# ComfyUI listens on loopback only: it has no authentication (COMFY_PROXY=true shows its UI
# through the worker). Extra flags come last, so COMFYUI_ARGS can override these.
COMFYUI_FLAGS="--listen 127.0.0.1 --port $COMFYUI_PORT --disable-auto-launch --disable-metadata --verbose $COMFY_LOG_LEVEL --log-stdout $COMFYUI_ARGS"

# tcmalloc, as worker-comfyui does, for ComfyUI alone: it keeps long-running PyTorch memory in check.
TCMALLOC=$(ldconfig -p 2>/dev/null | sed -n 's/^[[:space:]]*\(libtcmalloc\.so\.[0-9]*\) .*/\1/p' | head -n 1)

# Keeps ComfyUI running: restarts it when it exits, after COMFYUI_RESTART_DELAY_S, doubling (up to
# 30 s) while it keeps dying within a minute of its start. Runs in the background; a TERM stops
# ComfyUI and ends it.
supervise_comfyui() {
  child=''
  stopping=0
  trap 'stopping=1; [ -z "$child" ] || kill -TERM "$child" 2>/dev/null' TERM
  trap '' INT HUP
  delay=$COMFYUI_RESTART_DELAY_S
  while :; do
    started=$(date +%s)
    if [ -n "$TCMALLOC" ]; then
      (cd "$COMFYUI_DIR" && LD_PRELOAD=$TCMALLOC && export LD_PRELOAD && eval "exec $COMFYUI_CMD $COMFYUI_FLAGS") &
    else
      (cd "$COMFYUI_DIR" && eval "exec $COMFYUI_CMD $COMFYUI_FLAGS") &
    fi
    child=$!
    log "ComfyUI started (pid $child): $COMFYUI_CMD $COMFYUI_FLAGS"
    wait "$child"
    status=$?
    # A TERM interrupts `wait`: wait again for ComfyUI to be gone.
    while kill -0 "$child" 2>/dev/null; do
      wait "$child"
      status=$?
    done
    child=''
    [ "$stopping" = 0 ] || exit 0
    ran=$(($(date +%s) - started))
    [ "$ran" -lt 60 ] || delay=$COMFYUI_RESTART_DELAY_S
    log "ComfyUI exited (status $status) after ${ran}s; restarting it in ${delay}s"
    sleep "$delay" &
    child=$!
    wait "$child"
    child=''
    [ "$stopping" = 0 ] || exit 0
    delay=$((delay * 2))
    [ "$delay" -le 30 ] || delay=30
  done
}

# Waits for a child of this shell to be gone (a trapped signal interrupts `wait`); returns its status.
wait_for() {
  wait "$1"
  code=$?
  while kill -0 "$1" 2>/dev/null; do
    wait "$1"
    code=$?
  done
  return "$code"
}

supervise_comfyui &
supervisor=$!

# The worker in a session of its own (setsid, when the image has it): a Ctrl-C on a terminal
# (docker run -it) then reaches it once, forwarded from here, instead of also straight from the
# terminal, which would stop it twice. Word splitting of WORKER_CMD is wanted: it is a command line.
SETSID=''
if command -v setsid >/dev/null 2>&1; then SETSID=setsid; fi
# shellcheck disable=SC2086
$SETSID $WORKER_CMD &
worker=$!
log "worker started (pid $worker): $WORKER_CMD"

status=0
while [ -z "$stop_signal" ]; do
  wait "$worker"
  status=$?
  kill -0 "$worker" 2>/dev/null || break
done

if [ -n "$stop_signal" ]; then
  log "SIG$stop_signal: stopping the worker, then ComfyUI"
  kill -TERM "$worker" 2>/dev/null
  wait_for "$worker"
  status=$?
else
  log "the worker exited (status $status): stopping ComfyUI"
fi
kill -TERM "$supervisor" 2>/dev/null
wait_for "$supervisor"
log "stopped (status $status)"
exit "$status"
