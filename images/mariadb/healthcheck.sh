#!/bin/bash
# healthcheck.sh of the mariadb stand-in, with the options of upstream's that
# compose apps pass: the tests `--connect` (the server accepts TCP clients: not
# the entrypoint's temporary server, which has no network), `--innodb_initialized`
# and `--innodb_buffer_pool_loaded`, run in the order given; `--su-mysql` and
# `--su=USER` (the rest runs as that user); `--no-connect`, `--datadir=DIR`,
# `--no-defaults`, `--defaults-file=F`, `--defaults-extra-file=F`. It logs in
# as the healthcheck user the entrypoint wrote into DATADIR/.my-healthcheck.cnf.
# Without a passing --connect among the tests, the connect test runs last.
set -eo pipefail

datadir=/var/lib/mysql
defaults=()
use_datadir_login=1
connected=

# The client with the chosen option files (the datadir's login unless told
# otherwise).
client() {
	local files=("${defaults[@]}")
	if [ -n "$use_datadir_login" ] && [ -f "$datadir/.my-healthcheck.cnf" ]; then
		files+=(--defaults-extra-file="$datadir/.my-healthcheck.cnf")
	fi
	mariadb "${files[@]}" --skip-ssl --skip-ssl-verify-server-cert --batch --skip-column-names "$@"
}

# The server takes TCP clients: over the socket it says skip_networking is 0;
# else a TCP login to localhost gets as far as the server's own refusal.
connect() {
	local out
	out=$(client --protocol=socket -e 'SELECT @@skip_networking' 2>/dev/null) || out=
	case "$out" in
	0) return 0 ;;
	1) return 1 ;;
	esac
	out=$(client -h localhost --protocol=tcp -e 'SELECT @@skip_networking' 2>&1) || true
	case "$out" in
	0 | ERROR\ 1[0-9][0-9][0-9]\ \(28000\)* | ERROR\ 1820\ * | ERROR\ 4151\ * | ERROR\ 1226\ *) return 0 ;;
	1 | ERROR\ 2002\ *) return 1 ;;
	*)
		echo "Unknown error $out" >&2
		return 1
		;;
	esac
}

innodb_initialized() {
	[ "$(client --protocol=socket -e "SELECT 1 FROM information_schema.ENGINES WHERE engine = 'innodb' AND support IN ('YES', 'DEFAULT', 'ENABLED')")" = 1 ]
}

innodb_buffer_pool_loaded() {
	[[ $(client --protocol=socket -e "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'Innodb_buffer_pool_load_status'") == *'load completed'* ]]
}

# Run test $1, failing the check with upstream's words.
run_test() {
	case "$1" in
	connect | innodb_initialized | innodb_buffer_pool_loaded) ;;
	*)
		echo "healthcheck unknown option or test '$1'" >&2
		exit 1
		;;
	esac
	if ! "$1"; then
		echo "healthcheck $1 failed" >&2
		exit 1
	fi
	if [ "$1" = connect ]; then
		connected=1
	fi
}

if [ $# -eq 0 ]; then
	echo "At least one argument required" >&2
	exit 1
fi
while [ $# -gt 0 ]; do
	case "$1" in
	--su-mysql)
		shift
		exec gosu mysql "${BASH_SOURCE[0]}" "$@"
		;;
	--su=*)
		user=${1#*=}
		shift
		exec gosu "$user" "${BASH_SOURCE[0]}" "$@"
		;;
	--su)
		user=$2
		shift 2
		exec gosu "$user" "${BASH_SOURCE[0]}" "$@"
		;;
	--datadir=*) datadir=${1#*=} ;;
	--datadir)
		datadir=$2
		shift
		;;
	--no-defaults)
		defaults=(--no-defaults)
		use_datadir_login=
		;;
	--defaults-file=* | --defaults-extra-file=*) defaults+=("$1") ;;
	--no-connect) connected=1 ;;
	--*) run_test "${1#--}" ;;
	*)
		echo "Unknown healthcheck option $1" >&2
		exit 1
		;;
	esac
	shift
done
if [ -z "$connected" ]; then
	connect
fi
