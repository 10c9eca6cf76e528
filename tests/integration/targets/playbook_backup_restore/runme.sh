#!/usr/bin/env bash
# Backups and restores against two lab hosts: vmm_backup copies a running VM while it is paused (observed in
# vmd's log, the VM running again after), a stopped VM with vmd's lock held, each disk compacted into an image
# without a base (qemu-img check/info, data written by qemu-io read back), with a manifest whose sha256 are the
# files'; check mode, retention, if_running=fail, a failing vmctl create and a run killed while the VM is paused
# leave nothing the next run does not clean up (and the VM unpaused). playbooks/restore_vm.yml restores the
# backup on the other host through the controller: the data reads back there, the MAC is kept; a damaged backup
# and a VM that already exists are refused before any change.
set -eux
here=$(dirname "$(readlink -f "$0")")
. "$here/../setup_lab/files/lab_hosts.sh" playbook_backup_restore vmm1 vmm2
inv=$VMM_LAB_BASE/inventory.yml
cat > "$inv" <<INV
all:
  hosts:
    vmm1: {lab_root: "$(root vmm1)"}
    vmm2: {lab_root: "$(root vmm2)"}
  vars:
$(lab_inventory_vars)
INV
log=$VMM_LAB_BASE/play.log
result=$VMM_LAB_BASE/result.json
play() { ansible-playbook -i "$inv" "$@" 2>&1 | tee "$log"; return "${PIPESTATUS[0]}"; }
backup() { play "$here/backup.yml" -e "result_file=$result" "$@"; }
get() { python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {}, {"r": r}))' "$result" "$1"; }
backups=$(root vmm1)/var/vmm/backups
disks1=$(root vmm1)/var/vmm
mkdir -p "$backups" "$(root vmm2)/var/vmm/restored"
count() { find "$backups" -mindepth 1 -maxdepth 1 -name "$1-*" | wc -l; }
vm_state() { on "$1" vmctl status "$2" | awk -v vm="$2" '$NF == vm { print $(NF-1) }'; }

# web1: an overlay of a base; data written by qemu-io into both (the base's block shows through where the overlay has none)
on vmm1 vmctl create -s 64M "$disks1/base.qcow2"
qemu-io -c 'write -P 0x11 0 64k' "$disks1/base.qcow2"
(cd "$disks1" && on vmm1 vmctl create -b base.qcow2 web1.qcow2)
qemu-io -c 'write -P 0x5a 1M 64k' "$disks1/web1.qcow2"

# 1. a backup of the running VM: paused for the copy, running after, one image with the whole chain
backup -e keep=2
[ "$(get "r['changed']")" = True ]
first=$(get "r['backup']")
[ "$(get "r['manifest']['consistency']")" = paused ]
python3 -c "import sys; assert 0 < float(sys.argv[1]) < 30" "$(get "r['paused_seconds']")"
[ "$(vm_state vmm1 web1)" = running ]
grep -q 'web1: paused vm 1 successfully' "$(root vmm1)/var/log/vmd.log"
grep -q 'web1: unpaused vm 1 successfully' "$(root vmm1)/var/log/vmd.log"
[ "$(get "r['commands'][1:3]")" = "[['vmctl', 'pause', 'web1'], ['vmctl', 'unpause', 'web1']]" ]
qemu-img check -q "$first/disk0.qcow2"
! qemu-img info "$first/disk0.qcow2" | grep -q 'backing file' || exit 1
qemu-io -r -c 'read -P 0x5a 1M 64k' "$first/disk0.qcow2" | grep -q 'read 65536/65536'
qemu-io -r -c 'read -P 0x11 0 64k' "$first/disk0.qcow2" | grep -q 'read 65536/65536'
[ "$(sha256sum < "$first/disk0.qcow2" | cut -d' ' -f1)" = "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["disks"][0]["sha256"])' "$first/manifest.json")" ]
[ "$(stat -c %a "$first")" = 700 ] && [ "$(stat -c %a "$first/disk0.qcow2")" = 600 ]
[ "$(get "r['manifest']['definition']['interfaces'][0]['lladdr']")" = fe:e1:ba:d0:01:02 ]
[ "$(get "r['manifest']['disks'][0]['source_chain']")" = "['$disks1/web1.qcow2', '$disks1/base.qcow2']" ]
[ -z "$(ls -A "$disks1" | grep vmm_backup || true)" ]
[ -z "$(ls -A "$backups" | grep partial || true)" ]

# 2. check mode: the backup it would make, nothing made
backup -e keep=2 --check
[ "$(get "r['changed']")" = True ] && [ "$(count web1)" = 1 ]
[ ! -e "$(get "r['backup']")" ]

# 3. retention: keep=2 keeps the two newest, the first backup goes
backup -e keep=2
second=$(get "r['backup']")
backup -e keep=2
[ "$(count web1)" = 2 ] && [ ! -e "$first" ] && [ -d "$second" ]
[ "$(get "r['removed']")" = "['$first']" ]

# 4. if_running=fail refuses a running VM and names the option
if backup -e if_running=fail; then echo "a running VM was backed up with if_running=fail" >&2; exit 1; fi
grep -q 'VM web1 is running and if_running is fail' "$log"
[ "$(count web1)" = 2 ]

# 5. vmctl create -i fails (the lab's disk-full fault): no backup, nothing half left, the VM running again
on vmm1 lab fault set disk-full
if backup; then echo "the backup succeeded on a full disk" >&2; exit 1; fi
on vmm1 lab fault clear disk-full
grep -q 'vmctl said: vmctl: failed to create destination image file' "$log"
[ "$(vm_state vmm1 web1)" = running ] && [ "$(count web1)" = 2 ]
[ -z "$(ls -A "$backups" | grep -v '^web1-\|vmm_backup-lock' || true)" ]
[ -z "$(ls -A "$disks1" | grep vmm_backup || true)" ]

# 6. a run killed while the VM is paused (a 4G raw disk: its copy takes a while): the next run unpauses it,
#    removes the leftovers and makes the backup
on vmm1 vmctl create -s 4G "$disks1/big1.raw"
qemu-io -f raw -c 'write -P 0x77 3G 64k' "$disks1/big1.raw"
mkdir -p "$VMM_LAB_BASE/killremote"
ANSIBLE_REMOTE_TMP="$VMM_LAB_BASE/killremote" setsid ansible-playbook -i "$inv" "$here/backup.yml" -e vm=big1 \
    -e "result_file=$result" > "$VMM_LAB_BASE/killed.log" 2>&1 &
leader=$!
for _ in $(seq 600); do [ "$(vm_state vmm1 big1)" = paused ] && break; sleep 0.05; done
[ "$(vm_state vmm1 big1)" = paused ]
# Ansible's worker runs in a session of its own: its process group is found by this run's remote tmp path
module=$(pgrep -f "$VMM_LAB_BASE/killremote/.*AnsiballZ_vmm_backup" | head -1)
[ -n "$module" ]
group=$(ps -o pgid= -p "$module" | tr -d ' ')
kill -9 -- "-$group" "-$leader"
wait "$leader" || true
for _ in $(seq 100); do pgrep -g "$group" >/dev/null || break; sleep 0.1; done
! pgrep -g "$group" || exit 1
[ "$(vm_state vmm1 big1)" = paused ]
[ -e "$backups/.big1.vmm_backup-paused" ] && ls -A "$disks1" | grep -q '^\.big1\.raw\.vmm_backup-.*\.tmp$'
backup -e vm=big1 -e define=false
[ "$(vm_state vmm1 big1)" = running ]
python3 -c "import sys; assert sys.argv[2] + '/.big1.vmm_backup-paused' in eval(sys.argv[1]), sys.argv[1]" "$(get "r['removed_leftovers']")" "$backups"
[ -z "$(ls -A "$disks1" | grep vmm_backup || true)" ]
[ -z "$(ls -A "$backups" | grep partial || true)" ] && [ ! -e "$backups/.big1.vmm_backup-paused" ]
big=$(get "r['backup']")
qemu-io -r -f raw -c 'read -P 0x77 3G 64k' "$big/disk0.raw" | grep -q 'read 65536/65536'
[ "$(stat -c %s "$big/disk0.raw")" = $((4 * 1024 * 1024 * 1024)) ]

# 7. a stopped VM: copied under vmd's lock, no pause
on vmm1 vmctl stop -f big1
backup -e vm=big1 -e if_running=fail -e define=false
[ "$(get "r['manifest']['consistency']")" = stopped ] && [ "$(get "r['paused_seconds']")" = None ]
! get "r['commands']" | grep -q pause || exit 1
big_stopped=$(get "r['backup']")

# 8. restore on vmm2 through the controller: first a damaged copy of the backup, refused before any change
damaged=$backups/web1-20000101T000000Z
cp -a "$second" "$damaged"
printf '\x01' | dd of="$damaged/disk0.qcow2" bs=1 seek=200000 conv=notrunc 2>/dev/null
restore() { play "$COLL/playbooks/restore_vm.yml" -e restore_host=vmm2 -e restore_from=vmm1 -e "restore_disk_dir=$(root vmm2)/var/vmm/restored" "$@"; }
if restore -e "restore_backup=$damaged"; then echo "a damaged backup was restored" >&2; exit 1; fi
grep -q 'the backup is damaged, nothing was restored' "$log"
[ ! -e "$(root vmm2)/etc/vm.conf" ] || ! grep -q web1 "$(root vmm2)/etc/vm.conf" || exit 1
[ -z "$(ls -A "$(root vmm2)/var/vmm/restored")" ]
rm -r "$damaged"
# ... then the real one: running on vmm2 with the data and the MAC it had on vmm1
restore -e "restore_backup=$second"
[ "$(vm_state vmm2 web1)" = running ]
restored=$(root vmm2)/var/vmm/restored/web1.qcow2
qemu-img check -q -U "$restored"
! qemu-img info -U "$restored" | grep -q 'backing file' || exit 1
qemu-io -r -U -c 'read -P 0x5a 1M 64k' "$restored" | grep -q 'read 65536/65536'
qemu-io -r -U -c 'read -P 0x11 0 64k' "$restored" | grep -q 'read 65536/65536'
grep -q 'lladdr "fe:e1:ba:d0:01:02"' "$(root vmm2)/etc/vm.conf"
grep -q "disk \"$restored\"" "$(root vmm2)/etc/vm.conf"
on vmm2 vmd -n -f "$(root vmm2)/etc/vm.conf"
[ -z "$(ls -A "$(root vmm2)/var/vmm/restored" | grep -v '^web1.qcow2$' || true)" ]   # the transfer directory is gone
# ... and once more: web1 exists on vmm2 now, refused, vm.conf untouched
conf=$(sha256sum < "$(root vmm2)/etc/vm.conf")
if restore -e "restore_backup=$second"; then echo "a restore replaced an existing VM" >&2; exit 1; fi
grep -q 'VM web1 is already defined or running on vmm2 (remove it first); nothing was restored' "$log"
[ "$(sha256sum < "$(root vmm2)/etc/vm.conf")" = "$conf" ]

# 9. on the host that holds the backup (nothing copied): big1 removed, then restored from its backup, stopped
VMM_LAB_ROOT=$(root vmm1) ansible -i "$inv" vmm1 -m openbsd.vmm.vmm_vm -a "name=big1 state=absent vm_conf=$(root vmm1)/etc/vm.conf"
rm "$disks1/big1.raw"
play "$COLL/playbooks/restore_vm.yml" -e restore_host=vmm1 -e "restore_backup=$big_stopped" -e restore_state=stopped
grep -A2 'TASK \[Copy the images here\]' "$log" | grep -q '^skipping: \[vmm1\]'
[ "$(vm_state vmm1 big1)" = stopped ]
grep -A3 '"big1"' "$(root vmm1)/etc/vm.conf" | grep -q 'disable'
qemu-io -r -f raw -c 'read -P 0x77 3G 64k' "$disks1/big1.raw" | grep -q 'read 65536/65536'
[ "$(ls -A "$big_stopped")" = "$(printf 'disk0.raw\nmanifest.json')" ]   # the backup is left as it was
