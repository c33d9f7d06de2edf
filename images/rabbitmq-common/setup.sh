#!/bin/sh
# setup.sh base|management: what the rabbitmq stand-ins' Dockerfiles make at
# build time, as upstream's Dockerfiles make it: BusyBox's applets for the
# server's sh scripts, the rabbitmq user and group (uid and gid 999, home
# /var/lib/rabbitmq), its folders (mode 1777, as upstream, for `user:`), the
# Erlang cookie's link for root, the enabled plugins (rabbitmq_prometheus,
# and rabbitmq_management for `management`), /plugins, the configuration
# files and the entrypoint. Debian's packages are only unpacked: no
# maintainer script ran.
set -eu

here=$(dirname "$0")
case "${1:-}" in
	base) plugins=rabbitmq_prometheus ;;
	management) plugins=rabbitmq_prometheus,rabbitmq_management ;;
	*)
		echo >&2 "usage: $0 base|management"
		exit 2
		;;
esac

/usr/bin/busybox --install -s
if ! grep -qs '^root:' /etc/passwd; then
	echo 'root:x:0:0:root:/root:/bin/sh' >> /etc/passwd
	echo 'root:x:0:' >> /etc/group
fi
echo 'rabbitmq:x:999:999::/var/lib/rabbitmq:/usr/sbin/nologin' >> /etc/passwd
echo 'rabbitmq:x:999:' >> /etc/group

dirs="/var/lib/rabbitmq /etc/rabbitmq /etc/rabbitmq/conf.d /tmp/rabbitmq-ssl /var/log/rabbitmq"
# shellcheck disable=SC2086 # a list of folders
mkdir -p $dirs /root
# shellcheck disable=SC2086
chown -R rabbitmq:rabbitmq $dirs
# shellcheck disable=SC2086
chmod 1777 $dirs
ln -sf /var/lib/rabbitmq/.erlang.cookie /root/.erlang.cookie

# rabbitmq-plugins enable --offline, as a file: [a,b].
echo "[$plugins]." > /etc/rabbitmq/enabled_plugins
cp "$here/10-defaults.conf" /etc/rabbitmq/conf.d/
# Without the management plugin its agent collects no metrics (Prometheus's do).
if [ "$1" = base ]; then
	cp "$here/20-management_agent.disable_metrics_collector.conf" /etc/rabbitmq/conf.d/
fi
chown rabbitmq:rabbitmq /etc/rabbitmq/enabled_plugins /etc/rabbitmq/conf.d/*

set -- /usr/lib/rabbitmq/lib/rabbitmq_server-*/plugins
ln -sf "$1" /plugins

mkdir -p /usr/local/bin
cp "$here/docker-entrypoint.sh" /usr/local/bin/
