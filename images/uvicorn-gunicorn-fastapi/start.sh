#!/bin/sh
# /start.sh of the uvicorn-gunicorn-fastapi stand-in: the app module found as
# upstream's image finds it, its prestart hook, then gunicorn with uvicorn
# workers (settings from the environment, read by /gunicorn_conf.py).
set -e

# APP_MODULE, else MODULE_NAME:VARIABLE_NAME, MODULE_NAME defaulting to the
# package app.main (/app/app/main.py) or the module main (/app/main.py).
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
    echo "start.sh: no /app/main.py nor /app/app/main.py: set MODULE_NAME or APP_MODULE" >&2
    exit 1
fi
export APP_MODULE="${APP_MODULE:-$MODULE_NAME:$VARIABLE_NAME}"

# The app's own gunicorn_conf.py wins over the image's.
if [ -f /app/gunicorn_conf.py ]; then
    default_conf=/app/gunicorn_conf.py
elif [ -f /app/app/gunicorn_conf.py ]; then
    default_conf=/app/app/gunicorn_conf.py
else
    default_conf=/gunicorn_conf.py
fi
export GUNICORN_CONF="${GUNICORN_CONF:-$default_conf}"
export WORKER_CLASS="${WORKER_CLASS:-uvicorn.workers.UvicornWorker}"

# Sourced, so what it exports reaches gunicorn (migrations, waiting for a database).
PRE_START_PATH=${PRE_START_PATH:-/app/prestart.sh}
echo "Checking for script in $PRE_START_PATH"
if [ -f "$PRE_START_PATH" ]; then
    echo "Running script $PRE_START_PATH"
    # shellcheck disable=SC1090 # the app's own hook
    . "$PRE_START_PATH"
else
    echo "There is no script $PRE_START_PATH"
fi

exec gunicorn -k "$WORKER_CLASS" -c "$GUNICORN_CONF" "$APP_MODULE"
