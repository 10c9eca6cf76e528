#!/usr/bin/env bash
# install_server against the lab: check mode writes nothing, converge (sets from a mirror URL),
# verify (sha256sum, ISC `dhcpd -t`, the lab's httpd -n), converge again (changed=0), a listen
# address of * is refused, and a set that does not match SHA256 fails the run.
set -eux
here=$(dirname "$(readlink -f "$0")")
. "$here/../setup_lab/files/role_env.sh" role_install_server
# the switch network's address, there before dhcpd starts: dhcpd listens only on interfaces with an
# address on a declared subnet (dispatch.c discover_interfaces; none: it does not start)
ifconfig em1 inet 10.0.0.1/24 up
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
# httpd: only the stable address, docroot relative to the chroot; the lab's httpd -n accepts it
httpd -n -f "$L/etc/httpd.conf"
grep -qx $'\tlisten on 127.0.0.1 port 80' "$L/etc/httpd.conf"
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
# httpd (as the lab's www) serves what was published: world-readable files in 0755 directories
ftp -o "$L/index.fetched" "http://127.0.0.1/pub/OpenBSD/7.8/amd64/index.txt"
cmp "$L/index.fetched" "$sets/index.txt"
ftp -o - "http://127.0.0.1/pub/OpenBSD/7.8/amd64/SHA256.sig" > /dev/null
[ "$(stat -c %a "$sets/base78.tgz" "$sets/SHA256" "$sets/index.txt" | sort -u)" = 644 ]
[ "$(stat -c %a "$L/var/www/htdocs" "$L/var/www/htdocs/pub/OpenBSD/7.8/amd64" "$L/var/www/htdocs/disklabel" | sort -u)" = 755 ]
# no directory listings (the installer reads index.txt)
if ftp -o - "http://127.0.0.1/pub/OpenBSD/7.8/amd64/" 2> "$L/ftp.err"; then exit 1; fi
grep -q '403 Forbidden' "$L/ftp.err"

# 3. converge again: nothing changes
play "$here/converge.yml"
recap | grep -q ' changed=0 .* failed=0 '

# 4. httpd on every address (or egress), or a value with a newline, is refused before anything is touched
snapshot > "$L/before"
if play "$here/converge.yml" -e '{"install_server_listen": ["*"]}'; then exit 1; fi
grep -q 'must listen on VM-facing addresses only' "$L/play.log"
if play "$here/converge.yml" -e '{"install_server_listen": ["127.0.0.1\nserver \"x\" {"]}'; then exit 1; fi
grep -q 'install_server_listen: .* refused' "$L/play.log"
snapshot > "$L/after"
diff "$L/before" "$L/after"

# 4b. an address on no interface (a VM's next-server, the host side of its tap): httpd does not start
# (a reload, as here, ends the running httpd: the role reports it)
if play "$here/converge.yml" -e '{"install_server_listen": ["100.64.4.2"]}'; then exit 1; fi
grep -q "fatal in parent: send server: Can't assign requested address" "$L/var/log/daemon"
grep -q 'httpd ended after reading the new httpd.conf' "$L/play.log"
if rcctl check httpd; then exit 1; fi
# ... and on a fresh start too
if play "$here/converge.yml" -e '{"install_server_listen": ["100.64.4.2"]}'; then exit 1; fi
grep -q 'httpd(failed)' "$L/play.log"
play "$here/converge.yml"
rcctl check httpd

# 5. sets copied from a local tree are verified against SHA256.sig where they lie: a tampered set
#    fails the run (signify -C: man78.tgz: FAIL) ...
cp -a "$L/mirror/7.8/amd64" "$L/local-tree"
echo tampered >> "$L/local-tree/man78.tgz"
if play "$here/converge.yml" -e "install_server_sets_src=$L/local-tree"; then exit 1; fi
grep -q 'man78.tgz: FAIL' "$L/play.log"
# ... and nothing from that tree was put in the docroot
(cd "$sets" && sha256sum --ignore-missing -c SHA256)
# ... and with the signature check off, the unsigned SHA256 still catches it
if play "$here/converge.yml" -e "install_server_sets_src=$L/local-tree" -e install_server_verify_signature=false; then exit 1; fi
grep -q 'checksum mismatch (or missing): man78.tgz' "$L/play.log"

# 6. signatures (signify -C with the release key; the lab's key is installed by `lab mirror`)
key="$L/etc/signify/openbsd-78-base.pub"
# a missing key fails the run, naming the key and the way out -- never a silent skip
mv "$key" "$key.away"
snapshot > "$L/before"
if play "$here/converge.yml"; then exit 1; fi
grep -q "install_server_signify_key $key does not exist" "$L/play.log"
grep -q 'set install_server_verify_signature to false (unsafe)' "$L/play.log"
snapshot > "$L/after"
diff "$L/before" "$L/after"
# turned off explicitly: the run passes, with a warning
play "$here/converge.yml" -e install_server_verify_signature=false
recap | grep -q ' failed=0 '
grep -q 'WARNING: install_server_verify_signature is false: SHA256.sig is NOT verified (unsafe)' "$L/play.log"
mv "$key.away" "$key"
# another release's key: signify refuses
lab mirror "$L/mirror79" 7.9 amd64
if play "$here/converge.yml" -e "install_server_signify_key=$L/etc/signify/openbsd-79-base.pub"; then exit 1; fi
grep -q 'signify: verification failed: checked against wrong key' "$L/play.log"
# a mirror whose signed list was changed: the run fails at the signature check, before any set is
# fetched (the docroot keeps its sets and index; installers check SHA256.sig themselves)
cp -p "$L/mirror/7.8/amd64/SHA256.sig" "$L/SHA256.sig.good"
sed -i 's/^SHA256 (bsd.rd) = /SHA256 (bsd.rd) = 0/' "$L/mirror/7.8/amd64/SHA256.sig"
(cd "$sets" && sha256sum $(ls | grep -vx SHA256.sig)) > "$L/before"
if play "$here/converge.yml"; then exit 1; fi
grep -q 'signify: signature verification failed' "$L/play.log"
(cd "$sets" && sha256sum $(ls | grep -vx SHA256.sig)) > "$L/after"
diff "$L/before" "$L/after"
cp -p "$L/SHA256.sig.good" "$L/mirror/7.8/amd64/SHA256.sig"
play "$here/converge.yml"
recap | grep -q ' failed=0 '

# 7. bad inputs (table in bad_inputs.yml): each refused before anything is fetched or written, naming
#    the variable and the rule; httpd.conf, dhcpd.conf, rc.conf.local and the docroot unchanged after each
play "$here/bad_inputs.yml"
recap | grep -q ' failed=0 '
