#!/bin/busybox sh
# shellcheck shell=dash
# The distroless tree, made in the recipe's first stage with BusyBox (which
# does not stay): Debian's CA bundle as update-ca-certificates writes it (every
# certificate ca-certificates ships, concatenated), upstream's users and
# groups (root, nobody, nonroot 65532) with their homes, and a world-writable
# /tmp.
set -eu
bundle=/etc/ssl/certs/ca-certificates.crt
mkdir -p /etc/ssl/certs
: > "$bundle"
for cert in /usr/share/ca-certificates/mozilla/*.crt; do
	cat "$cert" >> "$bundle"
	# A file without a final newline would run into the next one.
	[ -z "$(tail -c 1 "$cert")" ] || echo >> "$bundle"
done
cp /tmp/distroless/passwd /tmp/distroless/group /tmp/distroless/nsswitch.conf /etc/
mkdir -p /root /home/nonroot /tmp
chmod 0700 /root
chown 65532:65532 /home/nonroot
chmod 1777 /tmp
rm -rf /tmp/distroless /bin/busybox /usr/bin/busybox
