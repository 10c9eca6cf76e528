#!/usr/bin/env bash
# install_server against the lab: check mode writes nothing, converge (sets from a mirror URL),
# verify (sha256sum, ISC `dhcpd -t`, the lab's httpd -n), converge again (changed=0), a listen
# address of * is refused, and a set that does not match SHA256 fails the run.
set -eux
here=$(dirname "$(readlink -f "$0")")
. "$here/../setup_lab/files/role_env.sh" role_install_server
lab mirror "$L/mirror" 7.8 amd64
sets="$L/var/www/htdocs/pub/OpenBSD/7.8/amd64"

snapshot() { (cd "$L" && find etc var/www -print0 | sort -z | xargs -0 ls -ld --time-style=+; rcctl ls on; rcctl ls started); }

# 1. check mode on the fresh host: reports changes, writes nothing
snapshot > "$L/before"
play "$here/converge.yml" --check
recap | grep -vq ' changed=0 '
snapshot > "$L/after"
diff "$L/before" "$L/after"

# 2. converge
play "$here/converge.yml"
recap | grep -q ' failed=0 '
(cd "$sets" && sha256sum --ignore-missing -c SHA256) | tee "$L/sums"
[ "$(grep -c ': OK$' "$L/sums")" = 6 ]
[ ! -e "$sets/comp78.tgz" ]
for f in SHA256 SHA256.sig BUILDINFO INSTALL.amd64 bsd bsd.rd base78.tgz man78.tgz; do grep -qE " $f\$" "$sets/index.txt"; done
[ -d "$L/var/www/htdocs/disklabel" ]
# httpd: only the VM-facing address, docroot relative to the chroot; the lab's httpd -n accepts it
httpd -n -f "$L/etc/httpd.conf"
grep -qx $'\tlisten on 10.0.0.1 port 80' "$L/etc/httpd.conf"
[ "$(grep -c 'listen on' "$L/etc/httpd.conf")" = 1 ]
grep -qx $'\troot "/htdocs"' "$L/etc/httpd.conf"
grep -qx "chroot \"$L/var/www\"" "$L/etc/httpd.conf"
# dhcpd.conf judged by ISC dhcpd; next-server/auto_install only for the host being installed
/usr/sbin/dhcpd -t -cf "$L/etc/dhcpd.conf"
dhcpd -n -c "$L/etc/dhcpd.conf" em1
grep -q 'hardware ethernet fe:e1:bb:d1:00:01;' "$L/etc/dhcpd.conf"
[ "$(grep -c 'filename "auto_install";' "$L/etc/dhcpd.conf")" = 1 ]
[ "$(grep -c 'next-server 10.0.0.1;' "$L/etc/dhcpd.conf")" = 1 ]
grep -q 'subnet 10.0.0.0 netmask 255.255.255.0 {' "$L/etc/dhcpd.conf"
# both daemons enabled with their flags and running
[ "$(rcctl get dhcpd flags)" = "-c $L/etc/dhcpd.conf em1" ]
[ "$(rcctl get httpd flags)" = "-f $L/etc/httpd.conf" ]
rcctl check httpd
rcctl check dhcpd

# 3. converge again: nothing changes
play "$here/converge.yml"
recap | grep -q ' changed=0 .* failed=0 '

# 4. httpd on every address (or egress) is refused before anything is touched
snapshot > "$L/before"
if play "$here/converge.yml" -e '{"install_server_listen": ["*"]}'; then exit 1; fi
grep -q 'must listen on VM-facing addresses only' "$L/play.log"

# 5. sets copied from a local tree are verified: a tampered set fails the run
cp -a "$L/mirror/7.8/amd64" "$L/local-tree"
echo tampered >> "$L/local-tree/man78.tgz"
if play "$here/converge.yml" -e "install_server_sets_src=$L/local-tree"; then exit 1; fi
grep -q 'checksum mismatch (or missing): man78.tgz' "$L/play.log"
# ... and nothing from that tree was put in the docroot
(cd "$sets" && sha256sum --ignore-missing -c SHA256)
