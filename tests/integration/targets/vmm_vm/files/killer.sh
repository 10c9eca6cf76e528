#!/bin/sh
# Stand-in for vmctl/vmd first on PATH: when its first argument is $KILL_AT it kills the module that
# called it (its parent) with SIGKILL -- before the real command runs, or after it with KILL_AFTER=1 --
# as a kill -9 or a lost host would. Any other call is the lab's own command.
real="$LAB_BIN/$(basename "$0")"
if [ "${1:-}" = "$KILL_AT" ]; then
    if [ -n "${KILL_AFTER:-}" ]; then
        "$real" "$@"
    fi
    kill -9 "$PPID"
    exit 137
fi
exec "$real" "$@"
