#!/usr/bin/env bash
# playbooks/provision.yml over two lab hosts with a plain inventory (no inventory plugin) and guests on
# vmd local interfaces: a golden image on each (build_image.yml), then the fleet: overlays, vm.conf
# definitions with derived MACs, VMs running with a login prompt on their consoles; a second run
# changes nothing; a guest set absent goes and its overlay is archived; a VM without a login prompt
# fails the run after the bounded wait; a fleet whose MACs collide is refused before any change.
# (Guests on switches, SSH and first boot: playbook_fleet.)
set -eux
here=$(dirname "$(readlink -f "$0")")
# two lab hosts; playbooks/host.yml makes each ready from its stand-in mirror (verified sets in the
# docroot, httpd on 127.0.0.1, pf's rdr-to for the installers), as a real host
. "$here/../setup_lab/files/lab_hosts.sh" playbook_provision vmm1 vmm2
log=$VMM_LAB_BASE/play.log
play() { ansible-playbook -i "$here/inventory.yml" "$@" 2>&1 | tee "$log"; return "${PIPESTATUS[0]}"; }
recap() { grep -E "^$1 +:" "$log"; }
mac() { python3 -c 'import hashlib,sys; d=hashlib.sha256(sys.argv[1].encode()).digest(); print("fe:e1:ba:d0:%02x:%02x" % (d[0], d[1]))' "$1"; }
state() { on "$1" vmctl status "$2" | awk -v vm="$2" '$NF == vm {print $(NF-1)}'; }

play "$COLL/playbooks/host.yml"
for h in $hosts; do recap "$h" | grep -q ' failed=0 '; done
play "$COLL/playbooks/build_image.yml"

# 0. check mode: reports the overlays it would make, changes nothing
conf_before=$(cat "$(root vmm1)/etc/vm.conf" "$(root vmm2)/etc/vm.conf" | sha256sum)
play "$COLL/playbooks/provision.yml" --check
# the overlays and the definitions (vmm_vm takes the overlays a real run makes first as made)
for h in $hosts; do recap "$h" | grep -q ' changed=2 .* failed=0 '; done
grep -q 'check mode: overlays web1, web2, db1 would be created' "$log"
grep -q "check mode: $(root vmm1)/var/vmm/web1.qcow2 does not exist yet; taken as made by an earlier task" "$log"
[ ! -e "$(root vmm1)/var/vmm/web1.qcow2" ] && [ ! -e "$(root vmm2)/var/vmm/app1.qcow2" ]
[ "$(cat "$(root vmm1)/etc/vm.conf" "$(root vmm2)/etc/vm.conf" | sha256sum)" = "$conf_before" ]

# 1. provision both hosts
play "$COLL/playbooks/provision.yml"
for h in $hosts; do recap "$h" | grep -q ' failed=0 '; done
[ "$(state vmm1 web1)" = running ] && [ "$(state vmm1 web2)" = running ]
[ "$(state vmm2 app1)" = running ] && [ "$(state vmm2 app2)" = running ]
# db1 is defined but stays stopped; nothing of vmm1's fleet runs on vmm2 and the other way round
[ "$(state vmm1 db1)" = stopped ]
[ -z "$(state vmm2 web1)" ]
[ -z "$(state vmm1 app1)" ]
# overlays on each host's golden image, accepted by qemu-img
for vm in web1 web2 db1; do
    qemu-img check -q "$(root vmm1)/var/vmm/$vm.qcow2"
    [ "$(qemu-img info --output=json "$(root vmm1)/var/vmm/$vm.qcow2" | python3 -c 'import json,sys; print(json.load(sys.stdin)["backing-filename"])')" = "$(root vmm1)/var/vmm/golden.qcow2" ]
done
# MACs: derived from the name (the vmm_lladdr derivation, computed here independently), or as given
grep -q "lladdr \"$(mac web1)\"" "$(root vmm1)/etc/vm.conf"
grep -q "lladdr \"$(mac db1)\"" "$(root vmm1)/etc/vm.conf"
grep -q "lladdr \"$(mac app1)\"" "$(root vmm2)/etc/vm.conf"
grep -q 'lladdr "fe:e1:ba:d0:99:01"' "$(root vmm2)/etc/vm.conf"
on vmm1 vmd -n -f "$(root vmm1)/etc/vm.conf"
# vmm_image_info reads the golden image as other playbooks would choose it: its manifest, still the
# sha256 the manifest records (sha256sum agrees), the overlays built on it (every guest's disk)
ansible -i "$here/inventory.yml" vmm1 -o -m openbsd.vmm.vmm_image_info -a "path=$(root vmm1)/var/vmm checksum=true" \
    | sed -n 's/^vmm1 | SUCCESS => //p' > "$VMM_LAB_BASE/images.json"
python3 - "$VMM_LAB_BASE/images.json" "$(root vmm1)/var/vmm" "$(sha256sum "$(root vmm1)/var/vmm/golden.qcow2" | cut -d' ' -f1)" <<'PY'
import json, sys
images = json.load(open(sys.argv[1]))['images']
assert [i['path'] for i in images] == [sys.argv[2] + '/golden.qcow2'], images
(golden,) = images
assert golden['manifest']['release'] == '7.8' and golden['manifest']['sha256'] == sys.argv[3], golden
assert golden['intact'] is True and golden['problems'] == [], golden
assert golden['overlays'] == [sys.argv[2] + '/%s.qcow2' % vm for vm in ('db1', 'web1', 'web2')], golden['overlays']
PY
on vmm2 vmd -n -f "$(root vmm2)/etc/vm.conf"
# memory per guest and per host default; the owner
on vmm1 vmctl status web1 | grep -q ' 256M '
on vmm2 vmctl status app1 | grep -q ' 384M '
on vmm1 vmctl status web2 | grep -q ' nobody '
# every running guest reached its login prompt; the summary says so
for vm in web1 web2; do on vmm1 lab console-log "$vm" | grep -q 'login: '; done
for vm in app1 app2; do on vmm2 lab console-log "$vm" | grep -q 'login: '; done
grep -q '"web1 running fe:e1:ba:d0:..:.."' "$log"
grep -q '"db1 stopped fe:e1:ba:d0:..:.."' "$log"

# 2. again: nothing changes
play "$COLL/playbooks/provision.yml"
for h in $hosts; do recap "$h" | grep -q ' changed=0 .* failed=0 '; done

# 3. a guest set absent: stopped and no longer defined; its overlay moved aside with a timestamp
play "$COLL/playbooks/provision.yml" --limit vmm2 \
    -e '{"vmm_guests": [{"name": "app1"}, {"name": "app2", "lladdr": "fe:e1:ba:d0:99:01", "state": "absent"}]}'
recap vmm2 | grep -q ' failed=0 '
[ -z "$(state vmm2 app2)" ] && [ "$(state vmm2 app1)" = running ]
! grep -q '"app2"' "$(root vmm2)/etc/vm.conf" || exit 1
[ ! -e "$(root vmm2)/var/vmm/app2.qcow2" ]
qemu-img check -q "$(ls "$(root vmm2)"/var/vmm/archive/app2-*.qcow2)"
grep -q '"app2 absent -"' "$log"

# 4. a VM that never reaches login (its image holds no system): the run fails after the bounded wait,
#    naming the VM and showing its console
on vmm1 vmctl create -s 4G "$(root vmm1)/var/vmm/blank.qcow2"
start=$(date +%s)
if play "$COLL/playbooks/provision.yml" --limit vmm1 -e vmm_boot_timeout=4 \
    -e "{\"vmm_guests\": [{\"name\": \"blank1\", \"image\": \"$(root vmm1)/var/vmm/blank.qcow2\"}]}"; then
    echo "provision.yml did not notice a VM without a login prompt" >&2
    exit 1
fi
grep -q 'no login prompt within 4 s on: blank1' "$log"
grep -q 'No bootable device' "$log"
[ "$(state vmm1 blank1)" = running ]
[ $(($(date +%s) - start)) -lt 60 ]

# 5. a guest whose explicit MAC is another guest's derived one (on another host): refused, nothing changes
conf_before=$(cat "$(root vmm1)/etc/vm.conf" "$(root vmm2)/etc/vm.conf" | sha256sum)
if play "$COLL/playbooks/provision.yml" -e "{\"vmm_guests\": [{\"name\": \"new1\", \"lladdr\": \"$(mac web1)\"}, {\"name\": \"web1\"}]}" --limit vmm2; then
    echo "provision.yml accepted colliding MACs" >&2
    exit 1
fi
grep -q "lladdr collision in the fleet: new1 and web1 both get $(mac web1)" "$log"
[ "$(cat "$(root vmm1)/etc/vm.conf" "$(root vmm2)/etc/vm.conf" | sha256sum)" = "$conf_before" ]
[ ! -e "$(root vmm2)/var/vmm/new1.qcow2" ]
