#!/bin/sh
# /start-reload.sh of the uvicorn-gunicorn-fastapi stand-in: for development,
# one uvicorn process that reloads on file changes, on HOST:PORT (0.0.0.0:80)
# at LOG_LEVEL (info), after the same app module search and prestart hook as
# /start.sh.
set -e

if [ -f /app/app/main.py ]; then
    default_module=app.main
elif [ -f /app/main.py ]; then
    default_module=main
else
    default_module=
fi
MODULE_NAME=${MODULE_NAME:-$default_module}
VARIABLE_NAME=${VARIABLE_NAME:-app}
if [ -z "${APP_MODULE:-}" ] && [ -z "$MODULE_NAME" ]; then
    echo "start-reload.sh: no /app/main.py nor /app/app/main.py: set MODULE_NAME or APP_MODULE" >&2
    exit 1
fi
export APP_MODULE="${APP_MODULE:-$MODULE_NAME:$VARIABLE_NAME}"
HOST=${HOST:-0.0.0.0}
PORT=${PORT:-80}
LOG_LEVEL=${LOG_LEVEL:-info}

PRE_START_PATH=${PRE_START_PATH:-/app/prestart.sh}
echo "Checking for script in $PRE_START_PATH"
if [ -f "$PRE_START_PATH" ]; then
    echo "Running script $PRE_START_PATH"
    # shellcheck disable=SC1090 # the app's own hook
    . "$PRE_START_PATH"
else
    echo "There is no script $PRE_START_PATH"
fi

exec uvicorn --reload --host "$HOST" --port "$PORT" --log-level "$LOG_LEVEL" "$APP_MODULE"
