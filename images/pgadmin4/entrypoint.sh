#!/bin/bash
# The pgadmin4 stand-in's entrypoint (this project's own), with upstream
# dpage/pgadmin4's contract:
# - First start (no /var/lib/pgadmin/pgadmin4.db, and no external
#   configuration database that has pgAdmin's tables):
#   PGADMIN_DEFAULT_EMAIL and PGADMIN_DEFAULT_PASSWORD (or
#   PGADMIN_DEFAULT_PASSWORD_FILE) are required, the email must be valid as
#   pgAdmin checks it, and they become the first user. The servers in
#   PGADMIN_SERVER_JSON_FILE (/pgadmin4/servers.json) and the preferences in
#   PGADMIN_PREFERENCES_JSON_FILE (/pgadmin4/preferences.json) are loaded for
#   that user, and PGPASS_FILE is copied to its storage folder.
#   Later starts load the servers again only with
#   PGADMIN_REPLACE_SERVERS_ON_STARTUP=True.
# - /pgadmin4/config_distro.py (or PGADMIN_CUSTOM_CONFIG_DISTRO_FILE), when
#   empty, gets the image's settings and one line per PGADMIN_CONFIG_NAME=value
#   (NAME = value, true and false as Python's True and False).
#   PGADMIN_CONFIG_CONFIG_DATABASE_URI_FILE reads that one from a file.
# - Gunicorn serves run_pgadmin:app with one worker and GUNICORN_THREADS
#   threads (25) on PGADMIN_LISTEN_ADDRESS:PGADMIN_LISTEN_PORT (port 80, 443
#   with PGADMIN_ENABLE_TLS and /certs/server.key and server.cert), or on
#   /run/pgadmin/pgadmin.sock with PGADMIN_ENABLE_SOCK; its worker timeout is
#   pgAdmin's session expiry, as upstream's (gunicorn_config.py). The address is upstream's [::]
#   where the container has IPv6, else 0.0.0.0 (Docker's default networks
#   turn IPv6 off, where binding [::] fails).
# - Started as root (user: root), it runs pgAdmin as PUID (5050) and PGID
#   (0), owning its folders first; started as another user, as that user.
set -euo pipefail

puid=${PUID:-5050}
pgid=${PGID:-0}
run=()
if [ "$(id -u)" = 0 ]; then
	case "$puid$pgid" in *[!0-9]*)
		echo "error: PUID and PGID must be numbers (PUID=$puid PGID=$pgid)" >&2
		exit 1 ;;
	esac
	if [ "$puid" = 0 ]; then
		echo "error: PUID=0 (root) is not allowed; give a non-root user ID" >&2
		exit 1
	fi
	chown -R "$puid:$pgid" /run/pgadmin /var/lib/pgadmin
	chown "$puid:$pgid" /pgadmin4/config_distro.py
	[ -d /certs ] && chown -R "$puid:$pgid" /certs
	run=(setpriv --reuid="$puid" --regid="$pgid" --clear-groups --)
	echo "pgAdmin will run as UID=$puid, GID=$pgid"
fi

# NAME from NAME_FILE (Docker's secrets), never both.
from_file() {
	local var=$1 file_var="${1}_FILE"
	if [ -n "${!var:-}" ] && [ -n "${!file_var:-}" ]; then
		echo "error: both $var and $file_var are set (but are exclusive)" >&2
		exit 1
	fi
	if [ -n "${!file_var:-}" ]; then
		if [ ! -r "${!file_var}" ]; then
			echo "error: $file_var is set to \"${!file_var}\" but the file does not exist or is not readable" >&2
			exit 1
		fi
		export "$var"="$(< "${!file_var}")"
	fi
	unset "$file_var"
}
if [ -n "${PGADMIN_CONFIG_CONFIG_DATABASE_URI_FILE:-}" ]; then
	from_file PGADMIN_CONFIG_CONFIG_DATABASE_URI
fi
from_file PGADMIN_DEFAULT_PASSWORD

export CONFIG_DISTRO_FILE_PATH="${PGADMIN_CUSTOM_CONFIG_DISTRO_FILE:-/pgadmin4/config_distro.py}"
if [ ! -s "$CONFIG_DISTRO_FILE_PATH" ]; then
	{
		echo "CA_FILE = '/etc/ssl/certs/ca-certificates.crt'"
		echo "LOG_FILE = '/dev/null'"
		echo "HELP_PATH = '../../docs/en_US/_build/html/'"
		echo "DEFAULT_BINARY_PATHS = {'pg': '/usr/lib/postgresql/17/bin', 'pg-17': '/usr/lib/postgresql/17/bin'}"
		while IFS= read -r var; do
			value=${!var}
			case "${value,,}" in
				true) value=True ;;
				false) value=False ;;
			esac
			echo "${var#PGADMIN_CONFIG_} = $value"
		done < <(compgen -e | grep '^PGADMIN_CONFIG_' || true)
	} > "$CONFIG_DISTRO_FILE_PATH"
	if [ ${#run[@]} -gt 0 ]; then
		chown "$puid:$pgid" "$CONFIG_DISTRO_FILE_PATH"
	fi
fi

python() {
	(cd /pgadmin4 && "${run[@]}" /venv/bin/python3 "$@")
}

load_servers() {
	local file="${PGADMIN_SERVER_JSON_FILE:-/pgadmin4/servers.json}" replace=()
	[ -f "$file" ] || return 0
	[ "${PGADMIN_REPLACE_SERVERS_ON_STARTUP:-}" = True ] && replace=(--replace)
	if [ "${PGADMIN_CONFIG_SERVER_MODE:-}" = False ]; then
		python setup.py load-servers "$file" "${replace[@]}"
	else
		python setup.py load-servers "$file" --user "$PGADMIN_DEFAULT_EMAIL" "${replace[@]}"
	fi
}

external_db=False
if [ -n "${PGADMIN_CONFIG_CONFIG_DATABASE_URI:-}" ]; then
	external_db=$(cd /pgadmin4/pgadmin/utils && "${run[@]}" /venv/bin/python3 -c '
import ast, os
from check_external_config_db import check_external_config_db
uri = os.environ["PGADMIN_CONFIG_CONFIG_DATABASE_URI"]
try:
    uri = ast.literal_eval(uri)
except (ValueError, SyntaxError):
    pass
print(check_external_config_db(uri))' 2>/dev/null) || external_db=False
fi

if [ ! -f /var/lib/pgadmin/pgadmin4.db ] && [ "$external_db" != True ]; then
	if [ -z "${PGADMIN_DEFAULT_EMAIL:-}" ] || [ -z "${PGADMIN_DEFAULT_PASSWORD:-}" ]; then
		echo 'You need to define the PGADMIN_DEFAULT_EMAIL and PGADMIN_DEFAULT_PASSWORD or PGADMIN_DEFAULT_PASSWORD_FILE environment variables.' >&2
		exit 1
	fi
	# pgAdmin's own check, with its configuration's settings for it (loaded
	# by path: its folder on sys.path would hide the standard html module).
	status=0
	python -c 'import importlib.util, os, sys
spec = importlib.util.spec_from_file_location("validation_utils", "pgadmin/utils/validation_utils.py")
utils = importlib.util.module_from_spec(spec)
spec.loader.exec_module(utils)
sys.exit(0 if utils.validate_email(os.environ["PGADMIN_DEFAULT_EMAIL"]) else 3)' || status=$?
	if [ "$status" = 3 ]; then
		echo "'$PGADMIN_DEFAULT_EMAIL' does not appear to be a valid email address (pgAdmin refuses special-use domains such as .local and .test unless PGADMIN_CONFIG_ALLOW_SPECIAL_EMAIL_DOMAINS lists them). Please reset the PGADMIN_DEFAULT_EMAIL environment variable and try again." >&2
		exit 1
	elif [ "$status" != 0 ]; then
		echo "error: checking PGADMIN_DEFAULT_EMAIL failed (exit status $status, above)" >&2
		exit 1
	fi
	# Importing the app makes its database and first user.
	PGADMIN_SETUP_EMAIL=$PGADMIN_DEFAULT_EMAIL PGADMIN_SETUP_PASSWORD=$PGADMIN_DEFAULT_PASSWORD python run_pgadmin.py
	load_servers
	preferences="${PGADMIN_PREFERENCES_JSON_FILE:-/pgadmin4/preferences.json}"
	if [ -f "$preferences" ]; then
		if [ "${PGADMIN_CONFIG_SERVER_MODE:-}" = False ]; then
			user=$(python -c 'import config; print(config.DESKTOP_USER)')
		else
			user=$PGADMIN_DEFAULT_EMAIL
		fi
		python setup.py set-prefs "$user" --input-file "$preferences"
	fi
	if [ -n "${PGPASS_FILE:-}" ] && [ -f "$PGPASS_FILE" ]; then
		if [ "${PGADMIN_CONFIG_SERVER_MODE:-}" = False ]; then
			dest=/var/lib/pgadmin/.pgpass
		else
			dest="/var/lib/pgadmin/storage/${PGADMIN_DEFAULT_EMAIL//@/_}/.pgpass"
		fi
		mkdir -p "$(dirname "$dest")"
		cp "$PGPASS_FILE" "$dest"
		chmod 600 "$dest"
		if [ ${#run[@]} -gt 0 ]; then
			chown -R "$puid:$pgid" "$(dirname "$dest")"
		fi
	fi
elif [ "${PGADMIN_REPLACE_SERVERS_ON_STARTUP:-}" = True ]; then
	load_servers
fi

if [ -n "${PGADMIN_ENABLE_SOCK:-}" ]; then
	bind=unix:/run/pgadmin/pgadmin.sock
else
	address=${PGADMIN_LISTEN_ADDRESS:-}
	if [ -z "$address" ]; then
		if [ -s /proc/net/if_inet6 ]; then address='[::]'; else address=0.0.0.0; fi
	fi
	if [ -n "${PGADMIN_ENABLE_TLS:-}" ]; then
		bind="$address:${PGADMIN_LISTEN_PORT:-443}"
	else
		bind="$address:${PGADMIN_LISTEN_PORT:-80}"
	fi
fi
tls=()
if [ -n "${PGADMIN_ENABLE_TLS:-}" ]; then
	tls=(--keyfile /certs/server.key --certfile /certs/server.cert)
fi

cd /pgadmin4
exec "${run[@]}" /venv/bin/gunicorn \
	--limit-request-line "${GUNICORN_LIMIT_REQUEST_LINE:-8190}" \
	--limit-request-fields "${GUNICORN_LIMIT_REQUEST_FIELDS:-100}" \
	--limit-request-field_size "${GUNICORN_LIMIT_REQUEST_FIELD_SIZE:-8190}" \
	--bind "$bind" -w 1 --threads "${GUNICORN_THREADS:-25}" \
	--access-logfile "${GUNICORN_ACCESS_LOGFILE:--}" "${tls[@]}" \
	-c gunicorn_config.py run_pgadmin:app
