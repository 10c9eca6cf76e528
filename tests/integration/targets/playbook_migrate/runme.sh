#!/usr/bin/env bash
# playbooks/migrate.yml against three lab hosts: one running VM moved (its base copied once, checked by sha256,
# the overlay pre-copied while it runs and only its changed blocks sent after the stop, arriving with the source's
# sha256; data written by qemu-io read back on the target, the MAC kept, the source's definition gone and its disk
# archived, the fleet state file's placement updated); the playbook killed after each step (and after the overlay's
# pre-copy) and run again (never enabled or running on two hosts, converges, data intact, no pre-copy or delta
# left); a cancel that gives the VM back to its source; a drain of 10 VMs placed by room; refusals (no room, a name
# taken, a foreign base on the target, a disk path in use) before any change.
set -eux
here=$(dirname "$(readlink -f "$0")")
. "$here/../setup_lab/files/lab_hosts.sh" playbook_migrate vmm1 vmm2 vmm3
inv=$VMM_LAB_BASE/inventory.yml
state=$VMM_LAB_BASE/fleet.vmm.state.json
journal=$VMM_LAB_BASE/fleet.vmm.migrate.json
cat > "$inv" <<INV
all:
  children:
    vmm_hosts:
      hosts:
        vmm1: {lab_root: "$(root vmm1)"}
        vmm2: {lab_root: "$(root vmm2)", vmm_host_memory: 512M}
        vmm3: {lab_root: "$(root vmm3)", vmm_host_memory: 512M, vmm_migrate_ssh_host: vmm3}
  vars:
$(lab_inventory_vars)
    vmm_disk_dir: "{{ lab_root }}/var/vmm"
    vmm_fleet_state_file: "$state"
INV
log=$VMM_LAB_BASE/play.log
play() { ansible-playbook -i "$inv" "$@" 2>&1 | tee "$log"; return "${PIPESTATUS[0]}"; }
migrate() { play "$COLL/playbooks/migrate.yml" "$@"; }
vm_state() { on "$1" vmctl status "$2" | awk -v vm="$2" '$NF == vm { print $(NF-1) }'; }
step() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["moves"].get(sys.argv[2], {}).get("step", "-"))' "$journal" "$1"; }
disks() { echo "$(root "$1")/var/vmm"; }
defined() { grep -q "^vm \"$2\"" "$(root "$1")/etc/vm.conf"; }
enabled() { defined "$1" "$2" && ! awk -v vm="\"$2\"" '$1 == "vm" { on = ($2 == vm) } on && $1 == "disable" { found = 1 } END { exit !found }' "$(root "$1")/etc/vm.conf"; }
# Never enabled nor running on two hosts.
once() {
    local vm=$1 running=0 enabled_on=0 h
    for h in vmm1 vmm2 vmm3; do
        case "$(vm_state "$h" "$vm")" in running|paused|stopping) running=$((running + 1));; esac
        if enabled "$h" "$vm"; then enabled_on=$((enabled_on + 1)); fi
    done
    [ "$running" -le 1 ] && [ "$enabled_on" -le 1 ]
}
mkdir -p "$(disks vmm1)" "$(disks vmm2)" "$(disks vmm3)"

# base and overlays on vmm1, the base named relative to the overlay's directory; data in both layers
on vmm1 vmctl create -s 64M "$(disks vmm1)/base.qcow2"
qemu-io -c 'write -P 0x11 0 64k' "$(disks vmm1)/base.qcow2"
for vm in web1 web2 web3; do
    (cd "$(disks vmm1)" && on vmm1 vmctl create -b base.qcow2 "$vm.qcow2")
done
qemu-io -c 'write -P 0x5a 1M 64k' "$(disks vmm1)/web1.qcow2"
qemu-io -c 'write -P 0x5b 1M 64k' "$(disks vmm1)/web2.qcow2"
play "$here/setup.yml" -e '{"setup_vms": ["web1", "web2", "web3"]}'
printf '{"version": 1, "guests": {"web1": {"host": "vmm1", "placed": "2026-12-01T00:00:00Z"}}}\n' > "$state"

# 1. refusals before any change: no host has room (vmm2 and vmm3 have 512M, the VM asks 1G)
cp "$(root vmm1)/etc/vm.conf" "$VMM_LAB_BASE/vm.conf.before"
if migrate -e migrate_from=vmm1 -e '{"migrate_vms": ["web1", "nosuch"]}'; then echo "a VM that does not exist was moved" >&2; exit 1; fi
grep -q 'nosuch is not defined in the vm.conf of vmm1' "$log"
if migrate -e migrate_from=vmm1 -e '{"migrate_vms": ["web1"]}' -e migrate_to=vmm2 -e '{"vmm_host_memory": "32M"}'; then
    echo "a VM was moved to a host without room" >&2; exit 1
fi
grep -q 'no vmm host has room for web1 (memory 64M): vmm2 has 32M of memory free; nothing was moved' "$log"
[ ! -e "$journal" ] && cmp "$(root vmm1)/etc/vm.conf" "$VMM_LAB_BASE/vm.conf.before"
[ "$(vm_state vmm1 web1)" = running ]
# host to host (vmm3 has vmm_migrate_ssh_host): SSH settings that are wrong, and a target ssh cannot reach, are
# refused before anything is sent; each move is then cancelled
if migrate -e migrate_from=vmm1 -e '{"migrate_vms": ["web1"]}' -e migrate_to=vmm3 -e '{"vmm_migrate_ssh_port": 0}'; then
    echo "a move ran with port 0" >&2; exit 1
fi
grep -q 'port: must be a number from 1 to 65535' "$log"
migrate -e migrate_cancel=true
if migrate -e migrate_from=vmm1 -e '{"migrate_vms": ["web1"]}' -e migrate_to=vmm3 -e vmm_migrate_ssh_host=nosuch.invalid; then
    echo "a move ran to a host ssh cannot reach" >&2; exit 1
fi
grep -q "vmm1 to vmm3: cannot write $(disks vmm3) on nosuch.invalid as root over SSH (port 22, exit 255: ssh: Could not resolve hostname nosuch.invalid" "$log"
migrate -e migrate_cancel=true
[ -z "$(ls -A "$(disks vmm3)")" ] && [ "$(vm_state vmm1 web1)" = running ] && enabled vmm1 web1 && ! defined vmm3 web1
rm -f "$journal"

# 2. web1 moves to vmm2: base first (the VM runs), overlay after the stop; running there with its MAC and data
mac=$(grep -A8 '^vm "web1"' "$(root vmm1)/etc/vm.conf" | grep -o 'lladdr "[0-9a-f:]*"' | head -1)
[ -n "$mac" ]
migrate -e migrate_from=vmm1 -e '{"migrate_vms": ["web1"]}' -e migrate_to=vmm2
[ "$(vm_state vmm2 web1)" = running ] && ! defined vmm1 web1 && [ "$(step web1)" = done ]
[ "$(sha256sum < "$(disks vmm2)/base.qcow2")" = "$(sha256sum < "$(disks vmm1)/base.qcow2")" ]
qemu-img check -q -U "$(disks vmm2)/web1.qcow2"
qemu-img info -U "$(disks vmm2)/web1.qcow2" | grep -q '^backing file: base.qcow2'
qemu-io -r -U -c 'read -P 0x5a 1M 64k' "$(disks vmm2)/web1.qcow2" | grep -q 'read 65536/65536'
qemu-io -r -U -c 'read -P 0x11 0 64k' "$(disks vmm2)/web1.qcow2" | grep -q 'read 65536/65536'
grep -q "$mac" "$(root vmm2)/etc/vm.conf"
on vmm2 vmd -n -f "$(root vmm2)/etc/vm.conf"
[ ! -e "$(disks vmm1)/web1.qcow2" ] && ls "$(disks vmm1)/archive" | grep -q '^web1-.*\.qcow2$'
[ -e "$(disks vmm1)/base.qcow2" ]   # the base stays: web2 and web3 use it
python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); assert s["guests"]["web1"]["host"] == "vmm2", s' "$state"
# the fleet's inventory now places web1 (a guest of `guests:`) on vmm2: provision.yml keeps it there
cat > "$VMM_LAB_BASE/fleet.vmm.yml" <<FLEET
plugin: openbsd.vmm.vmm
vmm_hosts: {vmm1: {}, vmm2: {}, vmm3: {}}
guests: [{name: web1, memory: 64M}]
FLEET
[ "$(ANSIBLE_INVENTORY_UNPARSED_FAILED=1 ansible-inventory -i "$VMM_LAB_BASE/fleet.vmm.yml" --host web1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["vmm_host"])')" = vmm2 ]
# the overlay was pre-copied while web1 ran; its stop changed it (the lab writes the guest's state into the first
# disk, as vmd's guest does), and only the changed blocks were sent while it was down: the copy is the source's disk
# as it was at the stop (archived on vmm1 by a rename), byte for byte
archived=$(ls "$(disks vmm1)"/archive/web1-*.qcow2)
[ "$(sha256sum < "$(disks vmm2)/web1.qcow2")" = "$(sha256sum < "$archived")" ]
python3 - "$journal" "$(stat -c %s "$archived")" "$(sha256sum < "$archived" | cut -d' ' -f1)" <<'PY'
import json, sys
move = json.load(open(sys.argv[1]))["moves"]["web1"]
overlay, sha256 = int(sys.argv[2]), sys.argv[3]
sent = move["sent_bytes"]
assert list(move["sha256"].values()) == [sha256], move
assert 0 < int(sent["while_down"]) < overlay, (sent, overlay)
assert int(sent["while_running"]) >= overlay, (sent, overlay)   # the base (it lacked) and the pre-copy
PY
leftovers() {
    find "$(root vmm1)" "$(root vmm2)" "$(root vmm3)" \( -name '*.precopy' -o -name '*.delta' -o -name '.*.precopy.*' -o -name '.*.delta.*' \
        -o -name '*.send' -o -name '*.progress' \) -print
}
[ -z "$(leftovers)" ]
# stopped on vmm1 before it was defined on vmm2 (the journal's step times)
python3 -c 'import json,sys; t=json.load(open(sys.argv[1]))["moves"]["web1"]["times"]; assert t["stopped"] < t["copied"] < t["defined"], t' "$journal"
# asked again: nothing to do, nothing changed
migrate -e migrate_from=vmm1 -e '{"migrate_vms": ["web1"]}' -e migrate_to=vmm2
grep -q 'changed=0' "$log"

# A run killed with -9: ansible-core's workers start their own sessions (os.setsid in WorkerProcess), so killing the
# run's process group leaves a worker in its task, orphaned. Stopped first, the run forks no new worker while its
# workers, then it, are killed; then the modules they ran. No process of the run is left.
kill_run() {
    kill -STOP "$1" 2>/dev/null || true
    pkill -9 -P "$1" || true
    kill -9 -- "-$1" 2>/dev/null || true
    pkill -9 -f "$VMM_LAB_BASE/killremote/" || true
    for _ in $(seq 100); do pgrep -f "ansible-playbook -i $inv" >/dev/null || return 0; sleep 0.1; done
    echo "a process of the killed run is left: $(pgrep -af "ansible-playbook -i $inv")" >&2
    return 1
}

# 3. killed after each step and run again: web2 to vmm3 (which has no base yet)
mkdir -p "$VMM_LAB_BASE/killremote"
# "precopy": killed once the overlay's pre-copy is on vmm3, before base_ready is journaled
reached() {
    if [ "$1" = precopy ]; then [ -e "$(disks vmm3)/web2.qcow2.precopy" ]; else [ -e "$journal" ] && [ "$(step web2)" = "$1" ]; fi
}
for wanted in planned precopy base_ready stopped copied defined answering; do
    ANSIBLE_REMOTE_TMP="$VMM_LAB_BASE/killremote" setsid ansible-playbook -i "$inv" "$COLL/playbooks/migrate.yml" \
        -e migrate_from=vmm1 -e '{"migrate_vms": ["web2"]}' -e migrate_to=vmm3 > "$VMM_LAB_BASE/killed.log" 2>&1 &
    leader=$!
    for _ in $(seq 600); do reached "$wanted" && break; kill -0 "$leader" 2>/dev/null || break; sleep 0.05; done
    kill_run "$leader"
    wait "$leader" || true
    once web2
    echo "killed after $(step web2) (wanted $wanted)"
    # a killed run cannot release the journal's lock: it still names that run (the next run takes it over)
    if [ "$wanted" = planned ]; then
        [ "$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["pid"])' "$journal.lock")" = "$leader" ]
    fi
done
migrate -e migrate_from=vmm1 -e '{"migrate_vms": ["web2"]}' -e migrate_to=vmm3
[ ! -e "$journal.lock" ]   # released by the run that finished
[ "$(step web2)" = done ] && [ "$(vm_state vmm3 web2)" = running ] && ! defined vmm1 web2
once web2
qemu-io -r -U -c 'read -P 0x5b 1M 64k' "$(disks vmm3)/web2.qcow2" | grep -q 'read 65536/65536'
[ -z "$(ls -A "$(disks vmm3)" | grep -v '^web2.qcow2$\|^base.qcow2$' || true)" ]   # no half copy left behind
[ ! -e "$journal.transfer" ]   # nor the controller's copies of a killed run
[ -z "$(leftovers)" ]   # nor a pre-copy or a delta on any host

# 4. cancel: web3's move killed after its stop (the copy comes next), then rolled back: running on vmm1 again, vmm2 keeps nothing of it
ANSIBLE_REMOTE_TMP="$VMM_LAB_BASE/killremote" setsid ansible-playbook -i "$inv" "$COLL/playbooks/migrate.yml" \
    -e migrate_from=vmm1 -e '{"migrate_vms": ["web3"]}' -e migrate_to=vmm2 > "$VMM_LAB_BASE/killed.log" 2>&1 &
leader=$!
for _ in $(seq 600); do [ "$(step web3)" = stopped ] && break; sleep 0.05; done
kill_run "$leader"
wait "$leader" || true
once web3
migrate -e migrate_cancel=true
[ "$(vm_state vmm1 web3)" = running ] && enabled vmm1 web3 && ! defined vmm2 web3 && [ "$(step web3)" = - ]
[ ! -e "$(disks vmm2)/web3.qcow2" ] && [ -z "$(leftovers)" ]
# a cancel of a move whose VM was started on its target is refused
python3 - "$journal" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
j["moves"]["web1"]["step"] = "defined"
json.dump(j, open(sys.argv[1], "w"))
PY
if migrate -e migrate_cancel=true; then echo "a move was cancelled after its VM started on the target" >&2; exit 1; fi
grep -q 'cannot cancel the move of web1: the VM was started on its target (step defined)' "$log"
[ "$(vm_state vmm2 web1)" = running ] && [ "$(step web1)" = defined ]
# ... and a re-run finishes that move first (web1 is asked for again: it is the journal's)
migrate -e migrate_from=vmm1 -e '{"migrate_vms": ["web1"]}' -e migrate_to=vmm2
[ "$(step web1)" = done ] && [ "$(vm_state vmm2 web1)" = running ] && once web1

# 5. refused before any change on the target: a base of the same name that is another image there, then a file
#    where the disk would go; each move cancelled at "planned"
on vmm1 vmctl create -s 32M "$(disks vmm1)/other.qcow2"
(cd "$(disks vmm1)" && on vmm1 vmctl create -b other.qcow2 web4.qcow2)
play "$here/setup.yml" -e '{"setup_vms": ["web4"]}'
on vmm2 vmctl create -s 32M "$(disks vmm2)/other.qcow2"
qemu-io -c 'write -P 0x99 0 64k' "$(disks vmm2)/other.qcow2"
foreign=$(sha256sum < "$(disks vmm2)/other.qcow2")
if migrate -e migrate_from=vmm1 -e '{"migrate_vms": ["web4"]}' -e migrate_to=vmm2; then echo "a foreign base was used" >&2; exit 1; fi
grep -q "other.qcow2 on vmm2 is another image than .*other.qcow2 on vmm1 .*web4's overlay would read the wrong base there; nothing was moved" "$log"
[ "$(sha256sum < "$(disks vmm2)/other.qcow2")" = "$foreign" ] && [ "$(vm_state vmm1 web4)" = running ] && [ "$(step web4)" = planned ]
migrate -e migrate_cancel=true
[ "$(step web4)" = - ] && [ "$(vm_state vmm1 web4)" = running ] && enabled vmm1 web4
rm "$(disks vmm2)/other.qcow2"
printf 'someone else' > "$(disks vmm2)/web4.qcow2"
if migrate -e migrate_from=vmm1 -e '{"migrate_vms": ["web4"]}' -e migrate_to=vmm2; then echo "a disk was overwritten" >&2; exit 1; fi
grep -q 'web4: nothing is where its disks go on vmm2' "$log"
[ "$(cat "$(disks vmm2)/web4.qcow2")" = 'someone else' ] && [ ! -e "$(disks vmm2)/other.qcow2" ]
migrate -e migrate_cancel=true
[ "$(cat "$(disks vmm2)/web4.qcow2")" = 'someone else' ]   # cancel archives only the copies a move made
rm "$(disks vmm2)/web4.qcow2"
# a base that no longer has its build manifest's sha256 (changed after it was built) is not copied anywhere
manifest=$(disks vmm1)/other.qcow2.manifest.json
printf '{"image": "%s", "sha256": "%064d"}\n' "$(disks vmm1)/other.qcow2" 0 > "$manifest"
if migrate -e migrate_from=vmm1 -e '{"migrate_vms": ["web4"]}' -e migrate_to=vmm2; then echo "a changed base was moved" >&2; exit 1; fi
grep -q "other.qcow2 on vmm1: not the sha256 of $manifest (the image changed after it was built); web4 was not moved" "$log"
[ ! -e "$(disks vmm2)/other.qcow2" ] && [ "$(vm_state vmm1 web4)" = running ] && [ "$(step web4)" = planned ]
migrate -e migrate_cancel=true
# with the right sha256 it moves (the drain below takes it)
printf '{"image": "%s", "sha256": "%s"}\n' "$(disks vmm1)/other.qcow2" "$(sha256sum < "$(disks vmm1)/other.qcow2" | cut -d' ' -f1)" > "$manifest"

# 6. drain of 10 VMs: web3, web4 and d01..d08 (d08 stopped), placed by room (vmm2 and vmm3 have 512M each, 64M per
#    VM; web1 and web2 are there already)
names=$(seq -f 'd%02g' 1 8 | tr '\n' ' ')
for vm in $names; do (cd "$(disks vmm1)" && on vmm1 vmctl create -b base.qcow2 "$vm.qcow2"); done
play "$here/setup.yml" -e "{\"setup_vms\": [$(printf '"%s",' $names | sed 's/,$//')], \"setup_stopped\": [\"d08\"]}"
# what a killed run's send of a base leaves on the source when that send (an async job) finishes on its own: the
# next run finds the base on the target, sends none, and so has no progress file of its own to remove (seen in the
# kill loop above with another test group running beside it); the drain's moves (base.qcow2 is on vmm2 and vmm3) remove it
printf 'pid 1\n0%%\n100%%\ndone 65536 bytes in 0.1 s\n' > "$(disks vmm1)/base.qcow2.progress"
migrate -e migrate_from=vmm1 -e migrate_drain=true
for vm in $names web3 web4; do
    [ "$(step "$vm")" = done ] && ! defined vmm1 "$vm"
    once "$vm"
done
[ -z "$(on vmm1 vmctl status | awk 'NR > 1')" ]
[ "$(vm_state vmm2 d08)$(vm_state vmm3 d08)" = stopped ]
# copies to vmm3 (vmm_migrate_ssh_host) went host to host over SSH, those to vmm2 through the controller
python3 - "$journal" "$log" <<'PY'
import json, re, sys
moves = json.load(open(sys.argv[1]))["moves"]
log = open(sys.argv[2]).read()
for name in ["d%02d" % n for n in range(1, 9)] + ["web3", "web4"]:
    sent = re.search(r"^TASK \[%s: send \S+ from vmm1 to vmm3\]" % name, log, re.M) is not None
    fetched = re.search(r"^TASK \[%s: fetch from vmm1\]" % name, log, re.M) is not None
    assert (sent, fetched) == ((True, False) if moves[name]["target"] == "vmm3" else (False, True)), (name, moves[name]["target"])
PY
[ -z "$(leftovers)" ]
# placement: most free memory first, then the fewest VMs, then the name; 512M hosts hold 8 VMs of 64M each
python3 - "$journal" <<'PY'
import json, sys
moves = json.load(open(sys.argv[1]))["moves"]
targets = {name: move["target"] for name, move in moves.items() if name.startswith("d")}
counts = {host: list(targets.values()).count(host) for host in ("vmm2", "vmm3")}
assert sum(counts.values()) == 8, counts
# each host ends with 6 VMs of 64M (the most free memory first, ties to the name): vmm2 and vmm3 alternate
assert sorted(moves[name]["target"] for name in moves) == ["vmm2"] * 6 + ["vmm3"] * 6, moves
for name, move in moves.items():
    steps = ["base_ready", "stopped", "copied", "defined", "answering", "done"]
    assert sorted(move["times"]) == sorted(steps) or name in ("web1", "web2"), move
    assert [move["times"][step] for step in steps] == sorted(move["times"][step] for step in steps), move
PY

# 7. a guest of a fleet file (the openbsd.vmm.vmm inventory) with a static DHCP lease keeps its address: vmm1 and
#    vmm2 serve 198.51.100.0/24 on their switch, vmm3 another network. Refused: to vmm3 (the address is not in its
#    subnets), and a guest the file lists under vmm1. Placed on vmm2: the lease is in vmm2's dhcpd.conf and its
#    dhcpd (restarted) offers the address to the VM's MAC; vmm1's dhcpd.conf has it no more.
export ANSIBLE_INVENTORY_ENABLED=openbsd.vmm.vmm,yaml
for h in vmm1 vmm2 vmm3; do
    net=198.51.100; [ "$h" = vmm3 ] && net=203.0.113
    on "$h" ifconfig veb0 create && on "$h" ifconfig vport0 create && on "$h" ifconfig vport0 inet "$net.1/24" up
    on "$h" ifconfig veb0 add vport0 up
    printf 'switch "uplink" {\n\tinterface veb0\n}\n' >> "$(root "$h")/etc/vm.conf"
    printf 'subnet %s.0 netmask 255.255.255.0 {\n}\n' "$net" > "$(root "$h")/etc/dhcpd.conf"
    on "$h" rcctl enable dhcpd && on "$h" rcctl set dhcpd flags -c "$(root "$h")/etc/dhcpd.conf" vport0 && on "$h" rcctl start dhcpd
done
fleet=$VMM_LAB_BASE/fleet.vmm.yml
lab_host() {
    local net=$2
    cat <<HOST
  $1:
$(lab_inventory_vars)
    lab_root: "$(root "$1")"
    vmm_disk_dir: "{{ lab_root }}/var/vmm"
    install_server_dhcpd: true
    install_server_dhcpd_conf: "{{ lab_root }}/etc/dhcpd.conf"
    install_server_dhcp_subnets: [{network: $net.0/24}]
    vmm_guest_network: $net.0/24
    vmm_guest_network_reserved: 9
HOST
}
{
    echo 'plugin: openbsd.vmm.vmm'
    echo 'vmm_hosts:'
    lab_host vmm1 198.51.100 | sed '$a\    vmm_guests: [{name: pin1, memory: 64M, switch: uplink}]'
    lab_host vmm2 198.51.100
    lab_host vmm3 203.0.113
    echo 'guests: [{name: lw1, memory: 64M, switch: uplink}]'
} > "$fleet"
python3 - "$state" <<'PY'
import json, sys
state = json.load(open(sys.argv[1]))
state["guests"]["lw1"] = {"host": "vmm1", "placed": "2026-12-01T00:00:00Z"}
json.dump(state, open(sys.argv[1], "w"))
PY
inventory_var() { ANSIBLE_INVENTORY_UNPARSED_FAILED=1 ansible-inventory -i "$fleet" --host "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$2"; }
lw1_mac=$(inventory_var lw1 lladdr)
[ "$(inventory_var lw1 ansible_host)" = 198.51.100.11 ]   # pin1 has .10 (the first of vmm1's pool)
# lw1 and pin1 on vmm1 with the MACs the inventory gives them, their leases in vmm1's dhcpd.conf (as provision.yml writes them)
for vm in lw1 pin1; do (cd "$(disks vmm1)" && on vmm1 vmctl create -b base.qcow2 "$vm.qcow2"); done
play "$here/setup.yml" -e '{"setup_vms": ["lw1", "pin1"], "setup_switch": "uplink"}' -e "{\"setup_lladdrs\": {\"lw1\": \"$lw1_mac\", \"pin1\": \"$(inventory_var pin1 lladdr)\"}}"
printf 'host lw1 {\n\thardware ethernet %s;\n\tfixed-address 198.51.100.11;\n}\nhost pin1 {\n\thardware ethernet %s;\n\tfixed-address 198.51.100.10;\n}\n' \
    "$lw1_mac" "$(inventory_var pin1 lladdr)" >> "$(root vmm1)/etc/dhcpd.conf"
on vmm1 rcctl restart dhcpd
# what the host's dhcpd (as last started) offers a MAC on its switch
offer() { PYTHONPATH="$COLL/tests/lab" python3 -c 'import json,sys; from labsim.dhcp_server import lease; print((lease(sys.argv[1], "veb0", sys.argv[2]) or {}).get("address"))' "$(root "$1")" "$2"; }
[ "$(offer vmm1 "$lw1_mac")" = 198.51.100.11 ] && [ "$(offer vmm2 "$lw1_mac")" = None ]
fmigrate() { play -i "$fleet" "$COLL/playbooks/migrate.yml" -e migrate_ssh_wait=false "$@"; }
if fmigrate -e migrate_from=vmm1 -e '{"migrate_vms": ["lw1"]}' -e migrate_to=vmm3; then echo "a VM was moved off its network" >&2; exit 1; fi
grep -q 'lw1 has the DHCP lease 198.51.100.11 ('"$lw1_mac"') on vmm1, which is in none of the DHCP subnets of vmm3 (203.0.113.0/24): the VM keeps its address only on a host of that network; nothing was moved' "$log"
if fmigrate -e migrate_from=vmm1 -e '{"migrate_vms": ["pin1"]}'; then echo "a guest listed under its host was moved" >&2; exit 1; fi
grep -q 'pin1 is listed under vmm1 in the fleet file, which keeps it there' "$log"
[ "$(step lw1)$(step pin1)" = -- ] && [ "$(vm_state vmm1 lw1)" = running ]
# placed where its address lives: vmm2 (vmm3 has no room for the address)
fmigrate -e migrate_from=vmm1 -e '{"migrate_vms": ["lw1"]}'
# the lease went to vmm2 while lw1 still ran on vmm1 (before the stop: not in its downtime); checked again, unchanged,
# before the definition
lease_at=$(grep -n '^TASK \[lw1: its DHCP lease (198.51.100.11) on vmm2\]' "$log" | cut -d: -f1)
stop_at=$(grep -n '^TASK \[lw1: stopped and disabled on vmm1' "$log" | cut -d: -f1)
[ -n "$lease_at" ] && [ -n "$stop_at" ] && [ "$lease_at" -lt "$stop_at" ]
[ "$(grep -A1 '^TASK \[lw1: the dhcpd.conf of vmm2\]' "$log" | grep -c '^changed: ')" = 1 ]
[ "$(grep -A1 '^TASK \[lw1: the dhcpd.conf of vmm2\]' "$log" | grep -c '^ok: ')" = 1 ]
[ "$(step lw1)" = done ] && [ "$(vm_state vmm2 lw1)" = running ] && ! defined vmm1 lw1 && once lw1
grep -A3 '^host lw1 {' "$(root vmm2)/etc/dhcpd.conf" | grep -q "hardware ethernet $lw1_mac;"
grep -A3 '^host lw1 {' "$(root vmm2)/etc/dhcpd.conf" | grep -q 'fixed-address 198.51.100.11;'
! grep -q '^host lw1 ' "$(root vmm1)/etc/dhcpd.conf" && grep -q '^host pin1 ' "$(root vmm1)/etc/dhcpd.conf"
for h in vmm1 vmm2; do /usr/sbin/dhcpd -t -cf "$(root "$h")/etc/dhcpd.conf" >/dev/null 2>&1; done
[ "$(offer vmm2 "$lw1_mac")" = 198.51.100.11 ] && [ "$(offer vmm1 "$lw1_mac")" = None ]
# the inventory follows: lw1 on vmm2 with the same address, in vmm2's leases; asked again, nothing changes
[ "$(inventory_var lw1 vmm_host)" = vmm2 ] && [ "$(inventory_var lw1 ansible_host)" = 198.51.100.11 ]
fmigrate -e migrate_from=vmm1 -e '{"migrate_vms": ["lw1"]}'
grep -q 'changed=0' "$log"

# 8. a guest that answers SSH (the lab's network namespaces): sg1, on a vmd local interface, booted from an
#    installed disk (what the lab's installer leaves: an MBR and its install record with root's key), moved to
#    vmm3. The move waits until it answers SSH on the address vmd gives it there, the fleet's state file records
#    that address, and what was done on the guest before the move (a file under /root) is there: on its disk.
if ! reason=$(lab net-check 2>&1); then
    echo "SKIPPED playbook_migrate, a guest answering SSH: the lab cannot make network namespaces here ($reason)" >&2
    exit 0
fi
ssh-keygen -q -t ed25519 -N '' -C migrate@controller -f "$VMM_LAB_BASE/id_ed25519"
on vmm1 vmctl create -s 64M "$(disks vmm1)/installed.qcow2"
PYTHONPATH="$COLL/tests/lab" python3 - "$(disks vmm1)/installed.qcow2" "$VMM_LAB_BASE/id_ed25519.pub" <<'PY'
import sys
from labsim import installer
disk, key = sys.argv[1], open(sys.argv[2], encoding="ascii").read()
installer._write_disk(disk, 0, installer._mbr(64 * 1024 * 1024 // 512))  # pylint: disable=protected-access
installer.write_install_record(disk, {"kernel": "/bsd", "hostname": "sg1", "release": "7.8", "arch": "amd64", "sshd": True,
                                      "permit_root_login": "prohibit-password", "root_authorized_keys": key})
PY
(cd "$(disks vmm1)" && on vmm1 vmctl create -b installed.qcow2 sg1.qcow2)
play "$here/setup.yml" -e '{"setup_vms": ["sg1"]}'
for _ in $(seq 300); do address1=$(on vmm1 lab guest-address sg1 2>/dev/null) && break; sleep 0.1; done
[ -n "$address1" ]
guests=$VMM_LAB_BASE/guests.yml
cat > "$guests" <<GUESTS
all:
  hosts:
    sg1:
      ansible_host: $address1
      vmm_host: vmm1
      ansible_user: root
      ansible_python_interpreter: /usr/bin/python3
      ansible_ssh_private_key_file: $VMM_LAB_BASE/id_ed25519
      ansible_ssh_common_args: >-
        -o ProxyCommand="lab guest-connect --root $VMM_LAB_BASE/{{ vmm_host }} %h %p"
        -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR
GUESTS
ansible -i "$guests" sg1 -m ansible.builtin.command -a 'touch /root/written-on-vmm1'
python3 - "$state" "$address1" <<'PY'
import json, sys
state = json.load(open(sys.argv[1]))
state["guests"]["sg1"] = {"host": "vmm1", "address": sys.argv[2], "placed": "2026-12-01T00:00:00Z"}
json.dump(state, open(sys.argv[1], "w"))
PY
migrate -i "$guests" -e migrate_from=vmm1 -e '{"migrate_vms": ["sg1"]}' -e migrate_to=vmm3
address3=$(on vmm3 lab guest-address sg1)
echo "sg1: $address1 on vmm1, $address3 on vmm3"
grep -A1 "^TASK \[sg1: answers SSH at $address3\]" "$log" | grep -q '^ok: \[localhost -> sg1\]'
python3 -c 'import json,sys; g=json.load(open(sys.argv[1]))["guests"]["sg1"]; assert (g["host"], g["address"]) == ("vmm3", sys.argv[2]), g' "$state" "$address3"
ansible -i "$guests" sg1 -e "ansible_host=$address3" -e vmm_host=vmm3 -m ansible.builtin.ping
# ... and what was done on it before the move is there: it is on its disk (the lab keeps a guest's state in it)
ansible -i "$guests" sg1 -e "ansible_host=$address3" -e vmm_host=vmm3 -m ansible.builtin.command -a 'ls /root/written-on-vmm1'
