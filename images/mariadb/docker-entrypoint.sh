#!/bin/bash
# Entrypoint of the mariadb stand-in (also the `mysql` name), with the upstream
# image's contract for what compose apps use:
# - an option as the command runs mariadbd with it; `mariadbd` or `mysqld`
#   (without --help, --version, …) is set up, anything else runs as it is;
# - the datadir and the socket's folder become mysql's, and the rest runs as
#   mysql (gosu);
# - an empty datadir (no `mysql` folder in it) is initialized: system tables
#   (mariadb-install-db), time zones, root's password (MARIADB_ROOT_PASSWORD,
#   MARIADB_ALLOW_EMPTY_ROOT_PASSWORD or MARIADB_RANDOM_ROOT_PASSWORD, printed
#   once), root@MARIADB_ROOT_HOST (default %), MARIADB_DATABASE, MARIADB_USER
#   with MARIADB_PASSWORD, the healthcheck user healthcheck.sh logs in as, then
#   /docker-entrypoint-initdb.d/*.sh, *.sql, *.sql.gz, *.sql.xz once, against a
#   temporary server listening on its socket only. Each MYSQL_* name works as
#   its MARIADB_* one, and each value can come from a file (VAR_FILE, e.g. a
#   Docker secret);
# - with none of the root password options, it refuses to initialize, with
#   upstream's message.
# - options of MySQL's server that MariaDB's lacks (mysqlx, GTID modes, …)
#   are passed as --loose-OPTION, which mariadbd ignores, and said.
# Not carried over from upstream: password hashes, replication, restoring a
# backup from initdb.d, upgrades of an existing datadir, *.sql.zst files. The
# variables of the first two stop it with an error rather than being ignored.
set -eo pipefail
shopt -s nullglob

# Upstream's log line: time, level, "[Entrypoint]", message.
mysql_log() {
	local level=$1
	shift
	printf '%s [%s] [Entrypoint]: %s\n' "$(date -u '+%Y-%m-%d %H:%M:%S+00:00')" "$level" "$*"
}
mysql_note() { mysql_log Note "$@"; }
mysql_warn() { mysql_log Warn "$@" >&2; }
mysql_error() {
	mysql_log ERROR "$@" >&2
	exit 1
}

# Export VAR from VAR or from the file VAR_FILE names (default $2); both set
# is an error, as upstream.
file_env() {
	local var=$1 file_var="$1_FILE" value=${2:-}
	if [ -n "${!var:-}" ] && [ -n "${!file_var:-}" ]; then
		mysql_error "Both $var and $file_var are set (but are exclusive)"
	fi
	if [ -n "${!var:-}" ]; then
		value=${!var}
	elif [ -n "${!file_var:-}" ]; then
		value=$(<"${!file_var}")
	fi
	export "$var=$value"
	unset "$file_var"
}

# MARIADB_NAME from itself, else from MYSQL_NAME (each or its _FILE); both
# names end up with the value, so init scripts may read either.
both_env() {
	local name=$1 default=${2:-}
	local mysql="MYSQL_$name" maria="MARIADB_$name"
	file_env "$mysql" "$default"
	file_env "$maria" "${!mysql}"
	export "$mysql=${!maria}"
}

# Whether the arguments ask mariadbd something and exit (no server to set up).
wants_help() {
	local arg
	for arg; do
		case "$arg" in
		-'?' | --help | --print-defaults | -V | --version) return 0 ;;
		esac
	done
	return 1
}

# The server's effective settings, read once from `mariadbd --verbose --help`
# (which also fails on a bad configuration, with mariadbd's reason):
# DATADIR, SOCKET, PORT and VERSION.
read_config() {
	local help
	# Warnings on stderr stay in $help: no setting line starts like them.
	if ! help=$("$@" --verbose --help 2>&1); then
		mysql_error $'mariadbd failed while attempting to check config\n\tcommand was: '"$* --verbose --help"$'\n\t'"$help"
	fi
	setting() { awk -v key="$1" '$1 == key && /^[^ \t]/ { sub(/^[^ \t]+[ \t]+/, ""); print; exit }' <<<"$help"; }
	DATADIR=$(setting datadir)
	DATADIR=${DATADIR%/}
	SOCKET=$(setting socket)
	PORT=$(setting port)
	VERSION=$(awk '{ for (i = 1; i < NF; i++) if ($i == "Ver") { print $(i + 1); exit } }' <<<"$help")
}

# The environment, with upstream's names and defaults.
setup_env() {
	both_env ROOT_HOST '%'
	both_env DATABASE
	both_env USER
	both_env PASSWORD
	both_env ROOT_PASSWORD
	: "${MARIADB_ALLOW_EMPTY_ROOT_PASSWORD:=${MYSQL_ALLOW_EMPTY_PASSWORD:-}}"
	export MARIADB_ALLOW_EMPTY_ROOT_PASSWORD MYSQL_ALLOW_EMPTY_PASSWORD="$MARIADB_ALLOW_EMPTY_ROOT_PASSWORD"
	: "${MARIADB_RANDOM_ROOT_PASSWORD:=${MYSQL_RANDOM_ROOT_PASSWORD:-}}"
	export MARIADB_RANDOM_ROOT_PASSWORD MYSQL_RANDOM_ROOT_PASSWORD="$MARIADB_RANDOM_ROOT_PASSWORD"
	: "${MARIADB_INITDB_SKIP_TZINFO:=${MYSQL_INITDB_SKIP_TZINFO:-}}"
	export MARIADB_INITDB_SKIP_TZINFO MYSQL_INITDB_SKIP_TZINFO="$MARIADB_INITDB_SKIP_TZINFO"
	DATABASE_ALREADY_EXISTS=
	if [ -d "$DATADIR/mysql" ]; then
		DATABASE_ALREADY_EXISTS=true
	fi
}

# The datadir (a new volume is root's) and the socket's folder become mysql's.
create_db_directories() {
	mkdir -p "$DATADIR"
	if [ "$(id -u)" = 0 ]; then
		find "$DATADIR" ! -user mysql -exec chown mysql:mysql '{}' +
		if [ "${SOCKET:0:1}" != @ ]; then
			mkdir -p "${SOCKET%/*}"
			find "${SOCKET%/*}" -maxdepth 0 ! -user mysql -exec chown mysql:mysql '{}' +
		fi
	fi
}

# A new datadir needs one way of setting root's password: upstream's message
# otherwise. What this stand-in does not do is refused, not ignored.
verify_minimum_env() {
	if [ -z "$MARIADB_ROOT_PASSWORD" ] && [ -z "${MARIADB_ROOT_PASSWORD_HASH:-}" ] &&
		[ -z "$MARIADB_ALLOW_EMPTY_ROOT_PASSWORD" ] && [ -z "$MARIADB_RANDOM_ROOT_PASSWORD" ]; then
		mysql_error $'Database is uninitialized and password option is not specified\n\tYou need to specify one of MARIADB_ROOT_PASSWORD, MARIADB_ROOT_PASSWORD_HASH, MARIADB_ALLOW_EMPTY_ROOT_PASSWORD and MARIADB_RANDOM_ROOT_PASSWORD'
	fi
	local var file_var
	for var in MARIADB_ROOT_PASSWORD_HASH MARIADB_PASSWORD_HASH MARIADB_REPLICATION_USER MARIADB_MASTER_HOST; do
		file_var=${var}_FILE
		if [ -n "${!var:-}" ] || [ -n "${!file_var:-}" ]; then
			mysql_error "$var is not supported by this stand-in (Debian's mariadb-server in the local profile)"
		fi
	done
}

# SQL through the server's socket as root (with root's password once it is set;
# `--dont-use-mysql-root-password` first: without), in MARIADB_DATABASE if set.
docker_process_sql() {
	local password=$MARIADB_ROOT_PASSWORD
	if [ "${1:-}" = --dont-use-mysql-root-password ]; then
		password=
		shift
	fi
	if [ -n "$MARIADB_DATABASE" ]; then
		set -- --database="$MARIADB_DATABASE" "$@"
	fi
	# The temporary server has no TLS, which the client asks for by default.
	MYSQL_PWD=$password mariadb --protocol=socket -uroot -hlocalhost --socket="$SOCKET" \
		--skip-ssl --skip-ssl-verify-server-cert "$@"
}

# $1 as the inside of an SQL string literal.
sql_escape() {
	local s=${1//\\/\\\\}
	s=${s//$'\n'/\\n}
	printf '%s' "${s//\'/\\\'}"
}

# 32 random letters and digits.
random_password() {
	local p
	p=$(head -c 48 /dev/urandom | base64 -w 0 | tr -d '/+=')
	printf '%s' "${p:0:32}"
}

# The server on its socket only (no network: nobody sees a half-made
# database), until it answers; MARIADB_PID is its process.
temp_server_start() {
	"$@" --skip-networking --default-time-zone=SYSTEM --socket="$SOCKET" --wsrep_on=OFF \
		--expire-logs-days=0 --skip-slave-start --loose-innodb_buffer_pool_load_at_startup=0 \
		--skip-ssl &
	MARIADB_PID=$!
	mysql_note "Waiting for server startup"
	local i
	# Longer than upstream's 30 s: an emulated VM starts it slowly.
	for i in {120..0}; do
		if docker_process_sql --dont-use-mysql-root-password --database=mysql <<<'SELECT 1' &>/dev/null; then
			break
		fi
		if ! kill -0 "$MARIADB_PID" 2>/dev/null; then
			i=0
			break
		fi
		sleep 1
	done
	if [ "$i" = 0 ]; then
		mysql_error "Unable to start server."
	fi
}

temp_server_stop() {
	kill "$MARIADB_PID"
	wait "$MARIADB_PID"
}

# System tables in the empty datadir; the command's own options go to
# mariadb-install-db too (but not those with whitespace, which it mangles).
init_database_dir() {
	mysql_note "Initializing database files"
	local args=() arg
	for arg in "${@:2}"; do
		if [[ $arg =~ [[:space:]] ]]; then
			mysql_warn "Not passing argument '$arg' to mariadb-install-db because mariadb-install-db does not support arguments with whitespace."
		else
			args+=("$arg")
		fi
	done
	mariadb-install-db --datadir="$DATADIR" --rpm --auth-root-authentication-method=normal "${args[@]}" \
		--cross-bootstrap --skip-test-db --old-mode=UTF8_IS_UTF8MB3 --default-time-zone=SYSTEM \
		--enforce-storage-engine= --skip-log-bin --expire-logs-days=0 \
		--loose-innodb_buffer_pool_load_at_startup=0 --loose-innodb_buffer_pool_dump_at_shutdown=0
	mysql_note "Database files initialized"
}

# The healthcheck user (for healthcheck.sh, from localhost only, no rights by
# default) as SQL, and its login in the datadir, readable by mysql alone.
healthcheck_users() {
	local password grant=${MARIADB_HEALTHCHECK_GRANTS:-USAGE} host
	password=$(random_password)
	for host in 127.0.0.1 ::1 localhost; do
		echo "CREATE USER IF NOT EXISTS healthcheck@'$host' IDENTIFIED BY '$password';"
		echo "SET PASSWORD FOR healthcheck@'$host' = PASSWORD('$password');"
		echo "GRANT $grant ON *.* TO healthcheck@'$host';"
	done
	(
		umask 0077
		printf '[mariadb-client]\nport=%s\nsocket=%s\nuser=healthcheck\npassword=%s\n' \
			"$PORT" "$SOCKET" "$password" >"$DATADIR/.my-healthcheck.cnf"
	)
}

# Time zones, root, the healthcheck user, the app's database and user.
setup_db() {
	if [ -z "$MARIADB_INITDB_SKIP_TZINFO" ]; then
		mariadb-tzinfo-to-sql --skip-write-binlog /usr/share/zoneinfo |
			MARIADB_DATABASE='' docker_process_sql --dont-use-mysql-root-password --database=mysql
	fi
	if [ -n "$MARIADB_RANDOM_ROOT_PASSWORD" ]; then
		MARIADB_ROOT_PASSWORD=$(random_password)
		export MARIADB_ROOT_PASSWORD MYSQL_ROOT_PASSWORD=$MARIADB_ROOT_PASSWORD
		mysql_note "GENERATED ROOT PASSWORD: $MARIADB_ROOT_PASSWORD"
	fi
	local root_pw root_remote='' database='' user='' grants=''
	root_pw=$(sql_escape "$MARIADB_ROOT_PASSWORD")
	if [ -n "$MARIADB_ROOT_HOST" ] && [ "$MARIADB_ROOT_HOST" != localhost ]; then
		root_remote="CREATE USER 'root'@'$MARIADB_ROOT_HOST' IDENTIFIED BY '$root_pw';
GRANT ALL ON *.* TO 'root'@'$MARIADB_ROOT_HOST' WITH GRANT OPTION;
GRANT PROXY ON ''@'%' TO 'root'@'$MARIADB_ROOT_HOST' WITH GRANT OPTION;"
	fi
	if [ -n "$MARIADB_DATABASE" ]; then
		mysql_note "Creating database ${MARIADB_DATABASE}"
		database="CREATE DATABASE IF NOT EXISTS \`$MARIADB_DATABASE\`;"
	fi
	if [ -n "$MARIADB_USER" ] && [ -n "$MARIADB_PASSWORD" ]; then
		mysql_note "Creating user ${MARIADB_USER}"
		user="CREATE USER '$MARIADB_USER'@'%' IDENTIFIED BY '$(sql_escape "$MARIADB_PASSWORD")';"
		if [ -n "$MARIADB_DATABASE" ]; then
			mysql_note "Giving user ${MARIADB_USER} access to schema ${MARIADB_DATABASE}"
			grants="GRANT ALL ON \`${MARIADB_DATABASE//_/\\_}\`.* TO '$MARIADB_USER'@'%';"
		fi
	fi
	mysql_note "Securing system users (equivalent to running mysql_secure_installation)"
	MARIADB_DATABASE='' docker_process_sql --dont-use-mysql-root-password --database=mysql --binary-mode <<-EOSQL
		SET @orig_sql_log_bin = @@SESSION.SQL_LOG_BIN;
		SET @@SESSION.SQL_LOG_BIN = 0;
		SET @@SESSION.SQL_MODE = REPLACE(@@SESSION.SQL_MODE, 'NO_BACKSLASH_ESCAPES', '');
		DROP USER IF EXISTS root@'127.0.0.1', root@'::1';
		EXECUTE IMMEDIATE CONCAT('DROP USER IF EXISTS root@\'', @@hostname, '\'');
		SET PASSWORD FOR 'root'@'localhost' = PASSWORD('$root_pw');
		$root_remote
		$(healthcheck_users)
		SET @@SESSION.SQL_LOG_BIN = @orig_sql_log_bin;
		$database
		$user
		$grants
	EOSQL
}

# /docker-entrypoint-initdb.d in name order: scripts run (executable) or are
# sourced (so they may call docker_process_sql), SQL runs in MARIADB_DATABASE.
process_init_files() {
	local f
	for f; do
		case "$f" in
		*.sh)
			if [ -x "$f" ]; then
				mysql_note "$0: running $f"
				"$f"
			else
				mysql_note "$0: sourcing $f"
				# shellcheck disable=SC1090
				. "$f"
			fi
			;;
		*.sql)
			mysql_note "$0: running $f"
			docker_process_sql <"$f"
			echo
			;;
		*.sql.gz)
			mysql_note "$0: running $f"
			gunzip -c "$f" | docker_process_sql
			echo
			;;
		*.sql.xz)
			mysql_note "$0: running $f"
			xzcat "$f" | docker_process_sql
			echo
			;;
		*) mysql_warn "$0: ignoring $f" ;;
		esac
	done
}

# A new database, made with a temporary server.
mariadb_init() {
	# Fails early (and says why) when the folder cannot be read.
	ls /docker-entrypoint-initdb.d/ >/dev/null
	init_database_dir "$@"
	mysql_note "Starting temporary server"
	temp_server_start "$@"
	mysql_note "Temporary server started."
	setup_db
	process_init_files /docker-entrypoint-initdb.d/*
	mysql_note "Stopping temporary server"
	temp_server_stop
	mysql_note "Temporary server stopped"
	# The files written beside the server's (.my-healthcheck.cnf) reach the
	# disk before the server takes writes: the server flushes its own, but a
	# power cut before the page cache's writeback (up to 30 s) would leave a
	# data directory the next start takes for initialized, without them.
	sync
	echo
	mysql_note "MariaDB init process done. Ready for start up."
	echo
}

# Server options MySQL 8 has and MariaDB does not (the X protocol, the
# caching_sha2/sha256 password plugins' settings, the 8.4 switch for
# mysql_native_password, GTID modes, the redo log's capacity, the admin
# interface): compose files written for the `mysql` image pass them, and
# mariadbd stops at an option it does not know. Each is given to mariadbd as
# --loose-OPTION, which it skips with a warning, and said once.
MYSQL_ONLY='mysqlx|mysqlx-.+|mysql-native-password|authentication-policy|caching-sha2-password-.+|sha256-password-.+|gtid-mode|enforce-gtid-consistency|innodb-redo-log-capacity|innodb-dedicated-server|log-error-verbosity|admin-address|admin-port|upgrade|group-replication-.+'
mysql_only_options() {
	local arg name
	SERVER_ARGS=()
	for arg; do
		name=${arg#--}
		name=${name%%=*}
		name=${name//_/-}
		name=${name#skip-}
		name=${name#disable-}
		name=${name#enable-}
		if [[ $arg == --* && $name =~ ^($MYSQL_ONLY)$ ]]; then
			mysql_note "$arg is a MySQL server option MariaDB does not have: passed as --loose-${arg#--}, which MariaDB ignores"
			arg=--loose-${arg#--}
		fi
		SERVER_ARGS+=("$arg")
	done
}

main() {
	if [ "${1:0:1}" = - ]; then
		set -- mariadbd "$@"
	fi
	if { [ "$1" = mariadbd ] || [ "$1" = mysqld ]; } && ! wants_help "$@"; then
		mysql_only_options "$@"
		set -- "${SERVER_ARGS[@]}"
		read_config "$@"
		mysql_note "Entrypoint script for MariaDB Server ${VERSION} started."
		setup_env
		create_db_directories
		if [ "$(id -u)" = 0 ]; then
			mysql_note "Switching to dedicated user 'mysql'"
			exec gosu mysql "${BASH_SOURCE[0]}" "$@"
		fi
		if [ -z "$DATABASE_ALREADY_EXISTS" ]; then
			verify_minimum_env
			mariadb_init "$@"
		fi
		# The server does not need them, and its children should not see them.
		unset MARIADB_ROOT_PASSWORD MYSQL_ROOT_PASSWORD MARIADB_PASSWORD MYSQL_PASSWORD \
			MARIADB_ROOT_PASSWORD_FILE MYSQL_ROOT_PASSWORD_FILE MARIADB_PASSWORD_FILE MYSQL_PASSWORD_FILE \
			MARIADB_ROOT_HOST MYSQL_ROOT_HOST
	fi
	exec "$@"
}

main "$@"
