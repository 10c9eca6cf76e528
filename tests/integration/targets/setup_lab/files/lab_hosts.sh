# Sourced by the playbook targets that run several lab hosts (their aliases say
# needs/target/setup_lab): one base /tmp/vmm-lab-<target>.XXXXXX for this run (two checkouts testing
# at once never share one; removed on exit) with a lab root per host, vmd running on each, a
# stand-in OpenBSD mirror and MAKEDEV, as a real host has them before playbooks/host.yml.
# Usage: . "$here/../setup_lab/files/lab_hosts.sh" <target> <host>...
# Gives: COLL, VMM_LAB_BASE, hosts, root HOST, on HOST CMD..., stop_labs; LAB_PYTHON for the roles;
# lab_inventory_vars, the inventory variables (YAML, 4 spaces in) that reach each host's lab as a real host is reached.
# The lab and the playbooks come with the collection (ansible-test runs a copy of the target).
COLL=$(readlink -f "${ANSIBLE_COLLECTIONS_PATH%%:*}/ansible_collections/openbsd/vmm")
export PATH="$COLL/tests/lab/bin:$PATH"
hosts="${*:2}"
VMM_LAB_BASE=$(mktemp -d "/tmp/vmm-lab-$1.XXXXXX")
chmod 755 "$VMM_LAB_BASE"  # as a root made by lab init
export VMM_LAB_BASE
root() { echo "$VMM_LAB_BASE/$1"; }
on() { VMM_LAB_ROOT=$(root "$1") "${@:2}"; }
lab_inventory_vars() {
    cat <<VARS
    ansible_connection: local
    ansible_python_interpreter: "$LAB_PYTHON"
    ansible_become: false
    vmm_environment: {VMM_LAB_ROOT: "{{ lab_root }}"}
    vmm_vm_conf: "{{ lab_root }}/etc/vm.conf"
    vmm_host_dev_dir: "{{ lab_root }}/dev"
VARS
}
stop_labs() { for h in $hosts; do on "$h" lab vmd stop >/dev/null 2>&1 || true; done; }
trap 'stop_labs; rm -rf "$VMM_LAB_BASE"' EXIT
for h in $hosts; do
    on "$h" lab init
    on "$h" lab vmd start
    on "$h" lab mirror "$(root "$h")/mirror" 7.8 amd64 >/dev/null
    cp "$COLL/tests/lab/bin/MAKEDEV" "$(root "$h")/dev/"
done
export LAB_PYTHON="$COLL/tests/lab/bin/python3-openbsd"  # the vmm hosts take OpenBSD's code paths
