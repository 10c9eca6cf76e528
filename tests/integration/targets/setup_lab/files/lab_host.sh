# Sourced by the playbook targets that run one lab host (their aliases say needs/target/setup_lab; the
# twin of lab_hosts.sh, for several): this run's own lab root /tmp/vmm-lab-<name>.XXXXXX (two checkouts
# testing at once never share one; removed on exit) with vmd running, a stand-in OpenBSD mirror and
# MAKEDEV, as a real host has them before playbooks/host.yml.
# Usage: . "$here/../setup_lab/files/lab_host.sh" <name>   (<name>: the target's, or shorter where a
# path below the root must stay short)
# Gives: COLL, VMM_LAB_ROOT (exported: the target's inventory.yml reads it) and L, the same; LAB_PYTHON.
# The lab and the playbooks come with the collection (ansible-test runs a copy of the target).
COLL=$(readlink -f "${ANSIBLE_COLLECTIONS_PATH%%:*}/ansible_collections/openbsd/vmm")
VMM_LAB_ROOT=$(mktemp -d "/tmp/vmm-lab-$1.XXXXXX")
chmod 755 "$VMM_LAB_ROOT"  # as a root made by lab init
export PATH="$COLL/tests/lab/bin:$PATH" VMM_LAB_ROOT
L=$VMM_LAB_ROOT
trap 'lab vmd stop >/dev/null 2>&1 || true; rm -rf "$L"' EXIT
lab init
lab vmd start
lab mirror "$L/mirror" 7.8 amd64 >/dev/null
cp "$COLL/tests/lab/bin/MAKEDEV" "$L/dev/"
export LAB_PYTHON="$COLL/tests/lab/bin/python3-openbsd"  # the vmm host takes OpenBSD's code paths
