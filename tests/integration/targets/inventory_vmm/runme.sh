#!/usr/bin/env bash
# The openbsd.vmm.vmm inventory plugin: `ansible-inventory --list` of a fleet file (groups, MACs
# recomputed independently, addresses from the pool, constructed groups and vars); a fleet whose
# MACs collide is refused; and the same file drives provision.yml in the lab: the VMs run with
# the MACs the inventory gives their hosts.
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

# 1. the inventory
ansible-inventory -i "$here/fleet.vmm.yml" --list > "$work/inventory.json"
python3 "$here/check_inventory.py" < "$work/inventory.json"
ansible-inventory -i "$here/fleet.vmm.yml" --graph | grep -q '@labhost_guests:'

# 2. a collision is an error of the source, with both names: app1 gets web1's derived MAC
web1_mac=$(python3 -c 'import hashlib; d=hashlib.sha256(b"web1").digest(); print("fe:e1:ba:d0:%02x:%02x" % (d[0], d[1]))')
sed "s/lladdr: \"FE:E1:BA:D0:00:07\"/lladdr: \"$web1_mac\"/" "$here/fleet.vmm.yml" > "$work/collide.vmm.yml"
grep -q "$web1_mac" "$work/collide.vmm.yml"
if ANSIBLE_INVENTORY_UNPARSED_FAILED=1 ansible-inventory -i "$work/collide.vmm.yml" --list > "$work/collide.log" 2>&1; then
    echo "a colliding fleet was accepted" >&2
    exit 1
fi
grep -q 'lladdr collision in the fleet: web1 and app1 both get' "$work/collide.log"

# 3. provisioning from the same file
lab init
lab vmd start
# a stand-in mirror; playbooks/host.yml makes the lab host ready from it, as a real host
lab mirror "$L/mirror" 7.8 amd64 >/dev/null
cp "$COLL/tests/lab/bin/MAKEDEV" "$L/dev/"
LAB_PYTHON="$COLL/tests/lab/bin/python3-openbsd" ansible-playbook -i "$here/fleet.vmm.yml" "$COLL/playbooks/host.yml" \
    -e host_hosts=labhost
ansible-playbook -i "$here/fleet.vmm.yml" "$COLL/playbooks/build_image.yml" -e build_image_hosts=labhost
ansible-playbook -i "$here/fleet.vmm.yml" "$COLL/playbooks/provision.yml" -e provision_hosts=labhost
vmctl status web1 | grep -q ' running web1$'
for vm in web1 db1; do
    lladdr=$(ansible -i "$here/fleet.vmm.yml" "$vm" -m debug -a var=lladdr | sed -n 's/.*"lladdr": "\(.*\)".*/\1/p')
    [ -n "$lladdr" ]
    grep -q "lladdr \"$lladdr\"" "$L/etc/vm.conf"
done
