#!/bin/bash
# Entrypoint of the mongo stand-in (FerretDB), with the upstream image's
# contract: options as the command run mongod with them; mongod started as root
# owns /data/db and /data/configdb and runs as `mongodb`; with
# MONGO_INITDB_ROOT_USERNAME and MONGO_INITDB_ROOT_PASSWORD (or their _FILE
# forms) mongod runs with --auth and that user is created in `admin` on a new
# data folder; /docker-entrypoint-initdb.d/*.sh and *.js run once, in name
# order, on a new data folder, against a server on 127.0.0.1 (*.js by the
# shell, on MONGO_INITDB_DATABASE as the root user, as upstream runs them;
# *.sh sourced, with the same shell command in the array `mongo`); mongod
# listens on every interface unless told where. Other commands run as they
# are.
set -Eeuo pipefail

if [ "${1:0:1}" = - ]; then
	set -- mongod "$@"
fi

if [ "$1" = mongod ] && [ "$(id -u)" = 0 ]; then
	# A new volume, or a host folder, may belong to someone else.
	find -L /data/configdb /data/db ! -user mongodb -exec chown mongodb '{}' +
	exec gosu mongodb "$0" "$@"
fi

# file_env VAR: VAR from itself or from the file VAR_FILE names, not both.
file_env() {
	local var=$1 file_var="${1}_FILE"
	if [ "${!var:-}" ] && [ "${!file_var:-}" ]; then
		echo >&2 "error: both $var and $file_var are set (but are exclusive)"
		exit 1
	fi
	local val=
	if [ "${!var:-}" ]; then
		val=${!var}
	elif [ "${!file_var:-}" ]; then
		val=$(<"${!file_var}")
	fi
	export "$var"="$val"
	unset "$file_var"
}

# has_arg OPTION ARGS...: whether ARGS hold OPTION (alone or as OPTION=value).
has_arg() {
	local want=$1 arg
	shift
	for arg; do
		case "$arg" in
			"$want" | "$want"=*) return 0 ;;
		esac
	done
	return 1
}

# db_path ARGS...: the data folder mongod ARGS use.
db_path() {
	local path=/data/db
	while [ "$#" -gt 0 ]; do
		case "$1" in
			--dbpath=*) path=${1#*=} ;;
			--dbpath) path=${2:-$path} ;;
		esac
		shift
	done
	echo "$path"
}

# wait_for_port PORT PID: wait for a server on 127.0.0.1:PORT while process
# PID runs, up to 180 s. Upstream waits 30 s, which a server started with an
# app's other services under emulation can take (seen: FerretDB beside eight
# services in a 1 GiB VM under TCG); one that exits fails at once.
wait_for_port() {
	local _
	for _ in $(seq 180); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
			return 0
		fi
		kill -0 "$2" 2>/dev/null || return 1
		sleep 1
	done
	return 1
}

# run_initdb_scripts ARGS...: start mongod ARGS on 127.0.0.1 only, run the
# *.sh and *.js files in /docker-entrypoint-initdb.d against it, and stop it.
run_initdb_scripts() {
	local f port=27017 prev=
	for f; do
		case "$prev" in --port) port=$f ;; esac
		case "$f" in --port=*) port=${f#*=} ;; esac
		prev=$f
	done
	"$@" --bind_ip 127.0.0.1 &
	local pid=$!
	if ! wait_for_port "$port" "$pid"; then
		echo >&2
		echo >&2 "error: mongod does not appear to have accepted connections quickly enough -- perhaps it had an error?"
		echo >&2
		exit 1
	fi
	export MONGO_INITDB_DATABASE="${MONGO_INITDB_DATABASE:-test}"
	# Upstream's name for the shell command init scripts use.
	mongo=(mongosh --host 127.0.0.1 --port "$port" --quiet)
	if [ "$MONGO_INITDB_ROOT_USERNAME" ] && [ "$MONGO_INITDB_ROOT_PASSWORD" ]; then
		mongo+=(--username="$MONGO_INITDB_ROOT_USERNAME" --password="$MONGO_INITDB_ROOT_PASSWORD" --authenticationDatabase=admin)
	fi
	echo
	for f in /docker-entrypoint-initdb.d/*; do
		case "$f" in
			*.sh)
				echo "$0: running $f"
				# shellcheck source=/dev/null
				. "$f"
				;;
			*.js)
				echo "$0: running $f"
				"${mongo[@]}" "$MONGO_INITDB_DATABASE" "$f"
				;;
			*) echo "$0: ignoring $f" ;;
		esac
		echo
	done
	kill "$pid"
	wait "$pid" || :
	echo
	echo 'MongoDB init process complete; ready for start up.'
	echo
}

if [ "$1" = mongod ]; then
	file_env MONGO_INITDB_ROOT_USERNAME
	file_env MONGO_INITDB_ROOT_PASSWORD

	if [ "$MONGO_INITDB_ROOT_USERNAME" ] && [ "$MONGO_INITDB_ROOT_PASSWORD" ]; then
		if ! has_arg --auth "$@"; then
			set -- "$@" --auth
		fi
		# FerretDB creates this user (SCRAM-SHA-1 and -256) in `admin` when that
		# database does not exist yet, that is on a new data folder.
		export FERRETDB_SETUP_DATABASE=admin
		export FERRETDB_SETUP_USERNAME="$MONGO_INITDB_ROOT_USERNAME"
		export FERRETDB_SETUP_PASSWORD="$MONGO_INITDB_ROOT_PASSWORD"
		echo "$0: FerretDB stand-in: authentication enforced for user '$MONGO_INITDB_ROOT_USERNAME' (admin); users have no roles"
	elif [ "$MONGO_INITDB_ROOT_USERNAME" ] || [ "$MONGO_INITDB_ROOT_PASSWORD" ]; then
		cat >&2 <<-'EOM'

			error: missing 'MONGO_INITDB_ROOT_USERNAME' or 'MONGO_INITDB_ROOT_PASSWORD'
			       both must be specified for a user to be created

		EOM
		exit 1
	fi

	# Init scripts run once: FerretDB keeps a database as <name>.sqlite.
	shopt -s nullglob
	db_files=("$(db_path "$@")"/*.sqlite)
	scripts=(/docker-entrypoint-initdb.d/*.sh /docker-entrypoint-initdb.d/*.js)
	shopt -u nullglob
	if [ "${#db_files[@]}" -eq 0 ] && [ "${#scripts[@]}" -gt 0 ]; then
		run_initdb_scripts "$@"
	fi

	# MongoDB defaults to localhost only: listen on every interface unless told.
	if ! has_arg --bind_ip "$@" && ! has_arg --bind_ip_all "$@"; then
		set -- "$@" --bind_ip_all
	fi

	unset "${!MONGO_INITDB_@}"
fi

exec "$@"
