#!/usr/bin/env bash
# playbooks/preflight.yml against the lab. A bare lab host (`lab init` only, vmd not started) fails
# every check the roles have not made true, each with the fix that names the command or the role
# variable; the same host made ready by the vmm_host and install_server roles passes them all.
# The preflight changes nothing on the host (the lab root's files are hashed before and after),
# in --check and in a normal run; the assertions read its JSON report.
set -eux
here=$(dirname "$(readlink -f "$0")")
# ansible-test runs a copy of this directory; the lab and the playbooks come with the collection.
COLL=$(readlink -f "${ANSIBLE_COLLECTIONS_PATH%%:*}/ansible_collections/openbsd/vmm")
LAB_BIN=$COLL/tests/lab/bin
L=$(mktemp -d /tmp/vmm-lab-playbook_preflight.XXXXXX)
export LAB_BIN PATH="$LAB_BIN:$PATH" VMM_LAB_ROOT=$L
cleanup() {
    rcctl stop httpd >/dev/null 2>&1 || true
    lab vmd stop >/dev/null 2>&1 || true
    rm -rf "$L"
}
trap cleanup EXIT
lab init
report=$L/report.json

play() { ansible-playbook -i "$here/inventory.yml" "$@" 2>&1 | tee "$L/play.log"; return "${PIPESTATUS[0]}"; }
recap() { grep -E '^labhost +:' "$L/play.log"; }
# Everything on the host the preflight could touch: files under etc, dev, var (docroot, vm.conf, pf,
# sysctl.conf, rc.conf.local, device nodes) with their modes, and the lab's live state (sysctls, pf, daemons).
snapshot() {
    (cd "$L" && find etc dev var -path var/log -prune -o -print0 | sort -z | xargs -0 stat -c '%n %a %U:%G %s' \
        && find etc dev var -path var/log -prune -o -type f -print0 | sort -z | xargs -0 sha256sum \
        && sysctl && pfctl -si && pfctl -sr && pfctl -a openbsd-vmm -sr && rcctl ls started && rcctl ls on)
}
# expect CHECK STATUS [TEXT-IN-FIX...]: the report's record for CHECK has STATUS and its fix names each TEXT
expect() {
    python3 - "$report" "$@" <<'PY'
import json, sys
report, name, status, *texts = sys.argv[1:]
checks = {check['name']: check for check in json.load(open(report))['hosts']['labhost']['checks']}
check = checks[name]
assert check['status'] == status, (name, status, check)
for text in texts:
    assert text in check['fix'], (name, text, check['fix'])
if status != 'fail':
    assert check['fix'] == '', check
PY
}
# the exact set of checks with STATUS
statuses() {
    python3 - "$report" "$1" <<'PY'
import json, sys
checks = json.load(open(sys.argv[1]))['hosts']['labhost']['checks']
print(' '.join(sorted(check['name'].replace(' ', ':') for check in checks if check['status'] == sys.argv[2])))
PY
}
# fact CHECK NAME: a value the check read
fact() {
    python3 - "$report" "$1" "$2" <<'PY'
import json, sys
checks = {check['name']: check for check in json.load(open(sys.argv[1]))['hosts']['labhost']['checks']}
print(checks[sys.argv[2]]['facts'][sys.argv[3]])
PY
}

# 1. a bare lab host, in check mode: the run fails, every check is reported, nothing changes
snapshot > "$L/before"
if play "$COLL/playbooks/preflight.yml" --check -e "preflight_report=$report"; then
    echo "the preflight passed on a bare host" >&2
    exit 1
fi
recap | grep -q ' changed=0 '
snapshot > "$L/after"
diff "$L/before" "$L/after"
[ "$(statuses fail)" = "docroot httpd install_server pf_anchor ptys signify_key \
sysctl:net.inet.ip.arpq.maxlen sysctl:net.inet.ip.forwarding taps vmctl vmd_enabled vmd_running" ]
# pf is on from boot (/etc/rc runs pfctl -e unless pf=NO), as on a fresh lab host
[ "$(statuses pass)" = "become free_space os pf_enabled python vm_conf" ]
[ "$(statuses skip)" = "dhcpd" ]
expect os pass
expect vmd_enabled fail 'rcctl enable vmd' 'vmm_host role'
expect vmd_running fail 'rcctl start vmd'
expect vmctl fail 'rcctl start vmd'
# 17 VMs to run, one of them with two interfaces; lab init made tap0..tap15
[ "$(fact taps usable)" = 16 ] && [ "$(fact taps needed)" = 18 ]
expect taps fail "cd $L/dev && sh MAKEDEV tap16 tap17" 'vmm_host_tap_count: 18'
expect ptys fail 'sh MAKEDEV pty0' 'vmm_host_pty_groups'
expect 'sysctl net.inet.ip.forwarding' fail 'sysctl net.inet.ip.forwarding=1' 'vmm_host_forwarding'
expect 'sysctl net.inet.ip.arpq.maxlen' fail 'sysctl net.inet.ip.arpq.maxlen=1024' 'vmm_host_arpq_maxlen'
expect pf_anchor fail 'vmm_host_pf'
expect httpd fail "httpd -n -f $L/etc/httpd.conf" 'install_server role'
expect docroot fail 'install_server role' '0644' 'root:www-data 0640'
expect signify_key fail 'openbsd-78-base.pub' 'install_server_signify_key'
expect install_server fail 'install_server_listen' 'ftp -o - http://127.0.0.1/pub/OpenBSD/7.8/amd64/index.txt'
grep -q 'fix: cd .*/dev && sh MAKEDEV tap16 tap17' "$L/play.log"

# 2. the host made ready by the roles (OpenBSD ships /dev/MAKEDEV; `lab mirror` also puts the release key
# in etc/signify, where base78.tgz puts it)
cp "$LAB_BIN/MAKEDEV" "$L/dev/MAKEDEV"
lab mirror "$L/mirror" 7.8 amd64
play "$here/converge.yml"
recap | grep -q ' failed=0 '

snapshot > "$L/before"
# also as the collection's playbook name
play openbsd.vmm.preflight -e "preflight_report=$report"
recap | grep -q ' changed=0 .* failed=0 '
snapshot > "$L/after"
diff "$L/before" "$L/after"
[ "$(statuses fail)" = "" ]
[ "$(statuses skip)" = "dhcpd" ]
[ "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["hosts"]["labhost"]["ok"])' "$report")" = True ]
[ "$(fact taps usable)" = 24 ]
fact install_server rdr_rules | grep -q 'on tap .*rdr-to 127.0.0.1 port 80'
grep -qE 'labhost +install_server +PASS' "$L/play.log"

# 3. what httpd's user may read decides the docroot check: a response file root:www-data 0640 is
# readable (www-data is in the group), the same file root:root 0640 is not, and a set of mode 0600 is not
sets=$L/var/www/htdocs/pub/OpenBSD/7.8/amd64
install -m 0640 -o root -g www-data /dev/null "$L/var/www/htdocs/fe:e1:ba:d0:00:01-install.conf"
play "$COLL/playbooks/preflight.yml" -e "preflight_report=$report"
expect docroot pass
chgrp root "$L/var/www/htdocs/fe:e1:ba:d0:00:01-install.conf"
chmod 0600 "$sets/man78.tgz"
if play "$COLL/playbooks/preflight.yml" -e "preflight_report=$report"; then exit 1; fi
[ "$(statuses fail)" = "docroot" ]
expect docroot fail 'root:www-data 0640'
python3 - "$report" "$L" <<'PY'
import json, sys
detail = {c['name']: c for c in json.load(open(sys.argv[1]))['hosts']['labhost']['checks']}['docroot']['detail']
assert 'fe:e1:ba:d0:00:01-install.conf (root:root 0640)' in detail, detail
assert 'man78.tgz (root:root 0600)' in detail, detail
PY
rm "$L/var/www/htdocs/fe:e1:ba:d0:00:01-install.conf"
chmod 0644 "$sets/man78.tgz"

# 4. a gap in the tap nodes: vmd's opentap() stops at the first missing node
rm "$L/dev/tap5"
if play "$COLL/playbooks/preflight.yml" -e "preflight_report=$report"; then exit 1; fi
[ "$(statuses fail)" = "taps" ]
[ "$(fact taps usable)" = 5 ]
expect taps fail "cd $L/dev && sh MAKEDEV $(echo tap{5..17}) ("
grep -q 'tap5 is missing, so the 18 nodes after it are never used' "$report"
touch "$L/dev/tap5"

# 5. pf turned off: the anchor's rules are loaded but nothing applies them
pfctl -d
if play "$COLL/playbooks/preflight.yml" -e "preflight_report=$report"; then exit 1; fi
[ "$(statuses fail)" = "pf_enabled" ]
expect pf_enabled fail 'pfctl -e'
pfctl -e

# 6. when the checks cannot run at all, the report says why: no Python at the interpreter's path,
# or no way to become root (here a doas that does not exist)
sed 's#ansible_python_interpreter: .*#ansible_python_interpreter: /usr/local/bin/python3-missing#' "$here/inventory.yml" > "$L/no-python.yml"
if ansible-playbook -i "$L/no-python.yml" "$COLL/playbooks/preflight.yml" -e "preflight_report=$report" > "$L/play.log" 2>&1; then exit 1; fi
[ "$(statuses fail)" = "python" ]
expect python fail 'pkg_add python3' 'ansible_python_interpreter: /usr/local/bin/python3'
if play "$COLL/playbooks/preflight.yml" -e "preflight_report=$report" -e preflight_become=true \
        -e ansible_become_method=community.general.doas -e "ansible_become_exe=$L/no-doas"; then exit 1; fi
[ "$(statuses fail)" = "become" ]
expect become fail 'become_method: community.general.doas' 'permit nopass'
