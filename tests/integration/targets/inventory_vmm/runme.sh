#!/usr/bin/env bash
# The openbsd.vmm.vmm inventory plugin: `ansible-inventory --list` of a fleet file (groups, MACs
# recomputed independently, addresses from the pool, a guest without a host placed, constructed
# groups and vars); a fleet whose MACs or addresses collide, or that has no room for a guest, is
# refused; the same file drives provision.yml in the lab: the VMs run with the MACs the inventory
# gives their hosts; the state file then gives the local-interface guest the address vmd gave it,
# and keeps placements when a bigger host is added.
set -eux
here=$(dirname "$(readlink -f "$0")")
COLL=$(readlink -f "${ANSIBLE_COLLECTIONS_PATH%%:*}/ansible_collections/openbsd/vmm")
# this run's own lab root (fleet.vmm.yml reads it from the environment), removed at the end
VMM_LAB_ROOT=$(mktemp -d /tmp/vmm-lab-inventory_vmm.XXXXXX)
chmod 755 "$VMM_LAB_ROOT"  # as a root made by lab init
export PATH="$COLL/tests/lab/bin:$PATH" VMM_LAB_ROOT
L=$VMM_LAB_ROOT
work=$(mktemp -d)
trap 'lab vmd stop >/dev/null 2>&1 || true; rm -rf "$work" "$L"' EXIT
# the fleet file in this run's own directory: its state file (fleet.vmm.state.json) is written beside it
fleet=$work/fleet.vmm.yml
cp "$here/fleet.vmm.yml" "$fleet"

# 1. the inventory (no state file yet)
ansible-inventory -i "$fleet" --list > "$work/inventory.json"
python3 "$here/check_inventory.py" "$work/fleet.vmm.state.json" < "$work/inventory.json"
ansible-inventory -i "$fleet" --graph | grep -q '@labhost_guests:'

# 2. a collision is an error of the source, with both names: app1 gets web1's derived MAC
web1_mac=$(python3 -c 'import hashlib; d=hashlib.sha256(b"web1").digest(); print("fe:e1:ba:d0:%02x:%02x" % (d[0], d[1]))')
sed "s/lladdr: \"FE:E1:BA:D0:00:07\"/lladdr: \"$web1_mac\"/" "$fleet" > "$work/collide.vmm.yml"
grep -q "$web1_mac" "$work/collide.vmm.yml"
if ANSIBLE_INVENTORY_UNPARSED_FAILED=1 ansible-inventory -i "$work/collide.vmm.yml" --list > "$work/collide.log" 2>&1; then
    echo "a colliding fleet was accepted" >&2
    exit 1
fi
grep -q 'lladdr collision in the fleet: web1 and app1 both get' "$work/collide.log"

# 2b. an address taken twice, and a guest no host has room for: refused before anything, naming them
refused() {  # fleet file, expected text
    if ANSIBLE_INVENTORY_UNPARSED_FAILED=1 ansible-inventory -i "$1" --list > "$work/refused.log" 2>&1; then
        echo "$1 was accepted" >&2
        exit 1
    fi
    tr -s ' \n' ' ' < "$work/refused.log" | grep -qF "$2" || { cat "$work/refused.log" >&2; exit 1; }
}
sed 's/{name: ci1, switch: uplink, state: stopped}/{name: ci1, switch: uplink, state: stopped, address: 192.0.2.11}/' \
    "$fleet" > "$work/taken.vmm.yml"
refused "$work/taken.vmm.yml" 'address collision in the fleet: db1 and ci1 both have 192.0.2.11'
{ cat "$fleet"; echo '  - {name: huge1, memory: 4G}'; } > "$work/full.vmm.yml"
# labhost 2G - 256M (web1) - 512M (db1) - 512M (ci1); othervmm 1G - 512M (app1)
refused "$work/full.vmm.yml" \
    'no vmm host has room for guest huge1 (memory 4G): labhost has 768M of memory free, othervmm has 512M of memory free'

# 3. provisioning from the same file
lab init
lab vmd start
# a stand-in mirror; playbooks/host.yml makes the lab host ready from it, as a real host
lab mirror "$L/mirror" 7.8 amd64 >/dev/null
cp "$COLL/tests/lab/bin/MAKEDEV" "$L/dev/"
LAB_PYTHON="$COLL/tests/lab/bin/python3-openbsd" ansible-playbook -i "$fleet" "$COLL/playbooks/host.yml" \
    -e host_hosts=labhost
ansible-playbook -i "$fleet" "$COLL/playbooks/build_image.yml" -e build_image_hosts=labhost
# the guests themselves are left out (--limit): reaching them over SSH is not what this target tests
ansible-playbook -i "$fleet" "$COLL/playbooks/provision.yml" -e provision_hosts=labhost --limit 'labhost,localhost'
vmctl status web1 | grep -q ' running web1$'
# the placed guest ci1 is provisioned on labhost too
for vm in web1 db1 ci1; do
    lladdr=$(ansible -i "$fleet" "$vm" -m debug -a var=lladdr | sed -n 's/.*"lladdr": "\(.*\)".*/\1/p')
    [ -n "$lladdr" ]
    grep -q "lladdr \"$lladdr\"" "$L/etc/vm.conf"
done

# 4. the state file: web1 is reached at the address vmd gave its local interface
ansible-playbook -i "$fleet" "$here/record_state.yml"
web1_id=$(vmctl status web1 | awk '$NF == "web1" {print $1}')
ansible-inventory -i "$fleet" --list > "$work/inventory2.json"
(cd "$here" && python3 check_state.py "$work/fleet.vmm.state.json" "$web1_id") < "$work/inventory2.json"

# 5. a bigger host joins: what was placed stays, a new guest goes to the host with the most room
sed 's/^  othervmm:$/  bighost:\n    vmm_host_memory: 64G\n  othervmm:/' "$fleet" > "$work/grown.vmm.yml"
echo '  - {name: new1, memory: 1G}' >> "$work/grown.vmm.yml"
cp "$work/fleet.vmm.state.json" "$work/grown.vmm.state.json"
ansible-inventory -i "$work/grown.vmm.yml" --list > "$work/grown.json"
python3 - "$work/grown.json" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))
assert sorted(data['labhost_guests']['hosts']) == ['ci1', 'db1', 'web1'], data['labhost_guests']
assert data['bighost_guests']['hosts'] == ['new1'], data.get('bighost_guests')
print('placements kept')
PY
