#!/usr/bin/env bash
# vmm_host against the lab: check mode on a fresh host writes nothing, converge, verify with
# the lab's tools and real validators (OpenDoas `doas -C`), converge again (changed=0), and a
# pf rule set that fails `pfctl -n` leaves the loaded rules and the files as they were.
set -eux
here=$(dirname "$(readlink -f "$0")")
. "$here/../setup_lab/files/role_env.sh" role_vmm_host vmd
# OpenBSD ships /dev/MAKEDEV with the base system; the lab's stand-in makes plain files.
cp "$LAB_BIN/MAKEDEV" "$L/dev/MAKEDEV"

# A host with a person's own configuration: a VM block in vm.conf and a loaded pf.conf.
vmctl create -s 64M "$L/handmade.qcow2"
cat >> "$L/etc/vm.conf" <<VMCONF
# written by hand
vm "handmade" {
	disable
	memory 64M
	disk "$L/handmade.qcow2"
}
VMCONF
printf 'set skip on lo\nblock return\npass\n' > "$L/etc/pf.conf"
# the uplink's own hostname.if: what the person wrote there stays
printf 'description "uplink"\n' > "$L/etc/hostname.em1"
pfctl -f "$L/etc/pf.conf"

snapshot() { (cd "$L" && find etc dev -type f -print0 | sort -z | xargs -0 sha256sum; sysctl; pfctl -sr; rcctl get vmd || true); }

# 1. check mode on the fresh host: reports changes, writes nothing
snapshot > "$L/before"
play "$here/converge.yml" --check --diff
recap | grep -vq ' changed=0 '
snapshot > "$L/after"
diff "$L/before" "$L/after"

# 2. converge
play "$here/converge.yml"
recap | grep -q ' failed=0 '

# sysctls live and persisted
[ "$(sysctl -n net.inet.ip.forwarding)" = 1 ]
[ "$(sysctl -n net.inet.ip.arpq.maxlen)" = 1024 ]
[ "$(sysctl -n net.inet6.ip6.forwarding)" = 0 ]
grep -qx 'net.inet.ip.forwarding=1' "$L/etc/sysctl.conf"
grep -qx 'net.inet.ip.arpq.maxlen=1024' "$L/etc/sysctl.conf"
# pf: the person's rules stay, the anchor is loaded with NAT, DNS redirect and the switch group
pfctl -sr | grep -qx 'block return'
pfctl -sr | grep -qx 'anchor "openbsd-vmm"'
pfctl -a openbsd-vmm -sr | grep -qx 'match out on egress inet from 100.64.0.0/10 to any nat-to (egress)'
pfctl -a openbsd-vmm -sr | grep -q 'rdr-to 192.0.2.53 port domain'
pfctl -a openbsd-vmm -sr | grep -qx 'pass on vmnet'
# ... and the install redirect: the VMs' port 80 (tap group, the switch's address) to httpd's 127.0.0.1
pfctl -a openbsd-vmm -sr | grep -qx 'pass in quick on tap inet proto tcp from <vmm_install_clients> to 100.64.0.0/10 port 80 rdr-to 127.0.0.1 port 80'
pfctl -a openbsd-vmm -sr | grep -qx 'pass in quick on vport0 inet proto tcp from <vmm_install_clients> to 10.0.0.1 port 80 rdr-to 127.0.0.1 port 80'
# only the VMs installing now (vmm_autoinstall adds them) reach httpd: the table starts empty
[ -z "$(pfctl -a openbsd-vmm -t vmm_install_clients -T show)" ]
# The lab's packet path follows the loaded rules (pf enabled): from a VM's tap to its next-server
# port 80 ends at 127.0.0.1:80; from egress nothing is redirected.
pfctl -e
python3 - "$(dirname "$LAB_BIN")" <<'PY'
import subprocess
import sys
sys.path.insert(0, sys.argv[1])
from labsim import network
# a VM that is not installing (not in <vmm_install_clients>) is not redirected to httpd
assert network.pf_translate("tap3", {"tap"}, "100.64.3.3", "100.64.3.2", 80) == ("100.64.3.2", 80)
assert network.pf_translate("vport0", {"vport"}, "10.0.0.11", "10.0.0.1", 80) == ("10.0.0.1", 80)
subprocess.run(["pfctl", "-a", "openbsd-vmm", "-t", "vmm_install_clients", "-T", "add", "100.64.3.3", "10.0.0.11"], check=True)
assert network.pf_translate("tap3", {"tap"}, "100.64.3.3", "100.64.3.2", 80) == ("127.0.0.1", 80)
assert network.pf_translate("vport0", {"vport"}, "10.0.0.11", "10.0.0.1", 80) == ("127.0.0.1", 80)
assert network.pf_translate("tap4", {"tap"}, "100.64.4.3", "100.64.4.2", 80) == ("100.64.4.2", 80)
subprocess.run(["pfctl", "-a", "openbsd-vmm", "-t", "vmm_install_clients", "-T", "flush"], check=True)
assert network.pf_translate("em0", {"egress"}, "198.51.100.7", "100.64.3.2", 80) == ("100.64.3.2", 80)
assert network.pf_translate("tap3", {"tap"}, "100.64.3.3", "100.64.3.2", 22) == ("100.64.3.2", 22)
PY
# devices: tap0..tap49 and two pty groups, nothing more
for k in $(seq 0 49); do [ -e "$L/dev/tap$k" ]; done
[ ! -e "$L/dev/tap50" ]
[ -e "$L/dev/ttyp0" ] && [ -e "$L/dev/ttyq0" ] && [ ! -e "$L/dev/ttyr0" ]
# vm.conf: globals and switch in the managed block, the hand-written VM kept; vmd accepts it
grep -qx 'local prefix "100.64.0.0/10"' "$L/etc/vm.conf"
grep -qx 'socket owner ":users"' "$L/etc/vm.conf"
grep -qx 'staggered start parallel 4 delay 10' "$L/etc/vm.conf"
grep -qx 'switch "uplink" {' "$L/etc/vm.conf"
grep -qx 'vm "handmade" {' "$L/etc/vm.conf"
vmd -n -f "$L/etc/vm.conf"
vmctl status | grep -q handmade
# the switch interface is up with its uplink, as hostname.veb0 makes it at boot
printf 'add em1\nadd vport0\nup\n' | diff - <(grep -v '^#' "$L/etc/hostname.veb0")
ifconfig veb0 | grep -q '^veb0: flags=.*<UP'
ifconfig veb0 | grep -qE '^\s+em1 flags='
# the host's address on the switch network (the guests' gateway, dhcpd's interface): vport0, in veb0
printf 'inet 10.0.0.1/24\nup\n' | diff - <(grep -v '^#' "$L/etc/hostname.vport0")
ifconfig vport0 | grep -q '^vport0: flags=.*<UP'
ifconfig vport0 | grep -qx '.inet 10.0.0.1/24'
ifconfig veb0 | grep -qE '^\s+vport0 flags='
# ... and the uplink itself is up, now and at boot (a veb never brings its members up), so it forwards
printf 'description "uplink"\nup\n' | diff - "$L/etc/hostname.em1"
ifconfig em1 | grep -qE '^em1: flags=[0-9a-f]+<UP,.*PROMISC'
[ "$(lab show --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["bridges"]["veb0"]["forwarding"])')" = "['em1', 'vport0']" ]
# vmd enabled, running, with its timeout and login class
rcctl get vmd status
rcctl check vmd
[ "$(rcctl get vmd timeout)" = 300 ]
[ "$(rcctl get vmd class)" = vmd ]
grep -q ':datasize=64G:' "$L/etc/login.conf"
# doas: each owner may force-stop their own VM, nothing else (judged by OpenDoas itself)
# (doas.conf is 0600 like on OpenBSD: the owners check a readable copy)
install -m 0644 "$L/etc/doas.conf" "$L/doas-check.conf"
doas_check() { runuser -u "$1" -- doas -C "$L/doas-check.conf" "${@:2}"; }
# The pattern is pkill's regular expression with the '.' escaped; doas compares `cmd` with the
# command as typed (doas.c match), so owners type the absolute path: the bare name is denied.
[ "$(doas_check nobody /usr/bin/pkill -xf 'vmd: web\.1')" = "permit nopass" ]
[ "$(doas_check nobody pkill -xf 'vmd: web\.1')" = "deny" ]
[ "$(doas_check nobody /usr/bin/pkill -xf 'vmd: web.1')" = "deny" ]
[ "$(doas_check nobody /usr/sbin/vmctl stop -f web.1)" = "permit nopass" ]
[ "$(doas_check nobody vmctl stop -f web.1)" = "deny" ]
[ "$(doas_check nobody /usr/bin/pkill -xf 'vmd: web2')" = "deny" ]
[ "$(doas_check nobody /usr/bin/pkill -f vmd)" = "deny" ]
[ "$(doas_check nobody /usr/sbin/vmctl stop -f web2)" = "deny" ]
[ "$(doas_check nobody /bin/sh)" = "deny" ]
[ "$(doas_check daemon /usr/bin/pkill -xf 'vmd: web2')" = "permit nopass" ]
[ "$(doas_check daemon /usr/bin/pkill -xf 'vmd: v\.\.')" = "permit nopass" ]
[ "$(doas_check daemon /usr/bin/pkill -xf 'vmd: web\.1')" = "deny" ]
# pkill dry run: the permitted patterns, given to pgrep -xf (POSIX extended regular expressions, as
# OpenBSD's pkill), against processes titled like vmd's: each finds its own VM and nothing else.
fake_pids=() fake_fds=()
fake_process() {
    mkfifo "$L/fifo.$1"
    (exec -a "$2" cat < "$L/fifo.$1" > /dev/null) &
    fake_pids+=("$!")
    exec {fd}> "$L/fifo.$1"
    fake_fds+=("$fd")
}
fake_process 0 'vmd: web.1'
fake_process 1 'vmd: webx1'
fake_process 2 'vmd: vmm'
fake_process 3 'vmd: v..'
[ "$(pgrep -P $$ -xf 'vmd: web\.1')" = "${fake_pids[0]}" ]
[ "$(pgrep -P $$ -xf 'vmd: v\.\.')" = "${fake_pids[3]}" ]
# (the unescaped patterns of the old rules hit other VMs and vmd itself)
[ "$(pgrep -P $$ -xf 'vmd: web.1' | wc -l)" = 2 ]
[ "$(pgrep -P $$ -xf 'vmd: v..' | wc -l)" = 2 ]
for fd in "${fake_fds[@]}"; do exec {fd}>&-; done
wait "${fake_pids[@]}"

# 3. converge again: nothing changes
play "$here/converge.yml"
recap | grep -q ' changed=0 .* failed=0 '

# 4. a rule set pfctl -n refuses: the role fails, files and loaded rules stay as they were
snapshot > "$L/before"
loads_before=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["loads"])' "$L/lab/basetools/pf.json")
if play "$here/converge.yml" -e '{"vmm_host_pf_extra_rules": ["pass in on $no_such_macro"]}'; then
    echo "the role accepted a rule set pfctl -n refuses" >&2
    exit 1
fi
grep -q "macro 'no_such_macro' not defined" "$L/play.log"
grep -q 'previous files restored' "$L/play.log"
snapshot > "$L/after"
diff "$L/before" "$L/after"
[ "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["loads"])' "$L/lab/basetools/pf.json")" = "$loads_before" ]

# 5. bad inputs (table in bad_inputs.yml): each refused before anything is written, naming the
#    variable and the rule; files and loaded rules byte-identical after each case
play "$here/bad_inputs.yml"
recap | grep -q ' failed=0 '
