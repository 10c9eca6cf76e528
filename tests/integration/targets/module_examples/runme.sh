#!/usr/bin/env bash
# Every module's EXAMPLES, as a user pastes them into a playbook, run against a lab host
# (scripts/lint-examples --run): the host paths in them are rewritten under the lab root and the
# modules' path defaults (vm_conf, dev_dir, docroot, ...) point into it. Each example runs twice in a
# row: the first run does what it says, the second changes nothing. What the lab maps, and why:
# - vmm_host_info's example asks for become with doas: the lab runs as root and this machine has no
#   doas.conf (the lab never changes the machine's configuration), so the host's ansible_become is false;
# - vmm_autoinstall's file_group is www-data, the user the lab's httpd serves as (OpenBSD's httpd: www);
# - the vault variables of vmm_autoinstall's examples are given as extra vars.
# Every example of vmm_disk, vmm_vm, vmm_vm_info, vmm_host_info, vmm_image_info and vmm_autoinstall runs.
# vmm_disk's third example runs first, on its own: it and the first two are alternatives for web1.qcow2
# and web2.qcow2 (overlays on golden.qcow2, or a plain 50G disk), and the module refuses to replace an
# image that differs without force: true, as documented.
set -eux
here=$(dirname "$(readlink -f "$0")")
. "$here/../setup_lab/files/lab_hosts.sh" module_examples vmm1
R=$(root vmm1)
export VMM_LAB_ROOT=$R
log=$VMM_LAB_BASE/examples.log

# What the examples take for granted on a host: an uplink switch, golden images in /var/vmm, the
# manifest playbooks/build_image.yml writes beside one (release, arch, sha256, build time), /home/vms.
ifconfig veb0 create
cat >> "$R/etc/vm.conf" <<CONF
switch "uplink" {
	interface veb0
}
CONF
mkdir -p "$R/var/vmm" "$R/home/vms"
vmctl create -s 1G "$R/var/vmm/golden.qcow2"
vmctl create -s 1G "$R/var/vmm/golden-db.qcow2"
# the disk of vmm_vm's second example no example makes: build's raw disk
vmctl create -s 1G "$R/var/vmm/build.raw"
printf '{"release": "7.8", "arch": "amd64", "sha256": "%s", "built_at": "2026-11-30T12:00:00Z"}\n' \
    "$(sha256sum "$R/var/vmm/golden.qcow2" | cut -d' ' -f1)" > "$R/var/vmm/golden.qcow2.manifest.json"

# The install server the roles (install_server, vmm_host) make: the release in the docroot, httpd on
# 127.0.0.1, pf sending the VMs' port 80 there (as tests/integration/targets/vmm_autoinstall does).
lab mirror "$R/var/www/htdocs/pub/OpenBSD" 7.8 amd64 >/dev/null
printf 'chroot "%s"\nserver "install" {\n\tlisten on 127.0.0.1 port 80\n\troot "/htdocs"\n}\n' "$R/var/www" > "$R/etc/httpd.conf"
rcctl enable httpd
rcctl set httpd flags -f "$R/etc/httpd.conf"
rcctl start httpd
echo 'pass in quick on tap inet proto tcp to port 80 rdr-to 127.0.0.1 port 80' > "$R/etc/pf.conf"
pfctl -f "$R/etc/pf.conf"

# where vmm_autoinstall's first example keeps the install's console (console_log: the module creates the file, not
# its directory; OpenBSD has no /var/log/vmm until someone makes it)
mkdir -p "$R/var/log/vmm"

examples() {
    python3 "$COLL/scripts/lint-examples" --collection "$COLL" --run --root "$R" --work "$VMM_LAB_BASE/work" \
        --defaults '{"vmm_autoinstall": {"file_group": "www-data"}}' \
        --extra-vars '{"vault_alice_password": "alice-secret-1", "vault_root_password": "root-secret-1"}' "$@" 2>&1 | tee "$log"
    [ "${PIPESTATUS[0]}" = 0 ]
    grep -E '^RUN ' "$log" > "$VMM_LAB_BASE/outcomes"
}
V=$R/var/vmm
image() { qemu-img info --output=json "$1" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["format"], d["virtual-size"], d.get("backing-filename", "-"))'; }

# 1. vmm_disk's third example: every guest's disk in one run, the old guest's archived (into a directory
# the host has: vmm_disk does not create directories, as documented)
vmctl create -s 1G "$V/old.qcow2"
mkdir "$V/archive"
examples --modules vmm_disk --examples vmm_disk=3
diff -u - "$VMM_LAB_BASE/outcomes" <<'EXPECTED'
RUN vmm_disk example 3 run 1: The overlays of every guest of the host in one run (one lock per image), the old guest's disk archived: changed
RUN vmm_disk example 3 run 2: The overlays of every guest of the host in one run (one lock per image), the old guest's disk archived: ok
EXPECTED
[ "$(image "$V/web1.qcow2")" = 'qcow2 1073741824 golden.qcow2' ]
[ "$(image "$V/web2.qcow2")" = 'qcow2 1073741824 golden.qcow2' ]
[ "$(image "$V/db1.qcow2")" = 'qcow2 1073741824 golden-db.qcow2' ]
[ "$(stat -c %a "$V/web1.qcow2" "$V/web2.qcow2" "$V/db1.qcow2" | sort -u)" = 600 ]
[ ! -e "$V/old.qcow2" ]
[ "$(image "$V"/archive/old-*.qcow2)" = 'qcow2 1073741824 -' ]

# 2. the other examples, on a host that took the other path for web1 and web2; old.raw and old.qcow2 to remove.
# vmm_autoinstall before vmm_vm: its first example installs onto web1's disk, which vmm_vm's first example boots.
rm "$V/web1.qcow2" "$V/web2.qcow2"
vmctl create -s 1G "$V/old.qcow2"
vmctl create -s 1G "$V/old.raw"
examples --modules vmm_disk,vmm_autoinstall,vmm_vm,vmm_vm_info,vmm_host_info,vmm_image_info --examples vmm_disk=1,2,4,5,6,7
diff -u - "$VMM_LAB_BASE/outcomes" <<'EXPECTED'
RUN vmm_disk example 1 run 1: A 50G qcow2 disk: changed
RUN vmm_disk example 1 run 2: A 50G qcow2 disk: ok
RUN vmm_disk example 2 run 1: An overlay on a golden image: changed
RUN vmm_disk example 2 run 2: An overlay on a golden image: ok
RUN vmm_disk example 4 run 1: A raw copy of an image: changed
RUN vmm_disk example 4 run 2: A raw copy of an image: ok
RUN vmm_disk example 5 run 1: Grow a disk (data kept): changed
RUN vmm_disk example 5 run 2: Grow a disk (data kept): ok
RUN vmm_disk example 6 run 1: Delete a disk that no VM uses: changed
RUN vmm_disk example 6 run 2: Delete a disk that no VM uses: ok
RUN vmm_disk example 7 run 1: Keep the disk of a removed VM in an archive instead (returns archived_to): changed
RUN vmm_disk example 7 run 2: Keep the disk of a removed VM in an archive instead (returns archived_to): ok
RUN vmm_autoinstall example 1 run 1: Install OpenBSD 7.8 onto web1's disk: changed
RUN vmm_autoinstall example 1 run 2: Install OpenBSD 7.8 onto web1's disk: ok
RUN vmm_autoinstall example 2 run 1: Only publish a response file with a static network and a custom disklabel: changed
RUN vmm_autoinstall example 2 run 2: Only publish a response file with a static network and a custom disklabel: ok
RUN vmm_vm example 1 run 1: A web server that runs, with a disk and a MAC on the uplink switch: changed
RUN vmm_vm example 1 run 2: A web server that runs, with a disk and a MAC on the uplink switch: ok
RUN vmm_vm example 2 run 1: Every VM of the host in one run: changed
RUN vmm_vm example 2 run 2: Every VM of the host in one run: ok
RUN vmm_vm example 3 run 1: Apply a memory change now rather than at the next restart: changed
RUN vmm_vm example 3 run 2: Apply a memory change now rather than at the next restart: ok
RUN vmm_vm example 4 run 1: Remove a VM (its disks stay): ok
RUN vmm_vm example 4 run 2: Remove a VM (its disks stay): ok
RUN vmm_vm_info example 1 run 1: All VMs of the host: ok
RUN vmm_vm_info example 1 run 2: All VMs of the host: ok
RUN vmm_vm_info example 2 run 1: Names of the running VMs: ok
RUN vmm_vm_info example 2 run 2: Names of the running VMs: ok
RUN vmm_vm_info example 3 run 1: One VM: ok
RUN vmm_vm_info example 3 run 2: One VM: ok
RUN vmm_vm_info example 4 run 1: The addresses vmd gave the running VMs' first local interface, by VM name: ok
RUN vmm_vm_info example 4 run 2: The addresses vmd gave the running VMs' first local interface, by VM name: ok
RUN vmm_host_info example 1 run 1: Check the host before using the collection: ok
RUN vmm_host_info example 1 run 2: Check the host before using the collection: ok
RUN vmm_host_info example 2 run 1: The checks that failed, with their fixes: ok
RUN vmm_host_info example 2 run 2: The checks that failed, with their fixes: ok
RUN vmm_image_info example 1 run 1: The golden images of the host: ok
RUN vmm_image_info example 1 run 2: The golden images of the host: ok
RUN vmm_image_info example 2 run 1: The newest intact image of OpenBSD 7.8 for amd64: ok
RUN vmm_image_info example 2 run 2: The newest intact image of OpenBSD 7.8 for amd64: ok
RUN vmm_image_info example 3 run 1: Is the image still what its manifest says, and which overlays use it?: ok
RUN vmm_image_info example 3 run 2: Is the image still what its manifest says, and which overlays use it?: ok
EXPECTED

# What the examples did, read back with the lab's and the machine's own tools.
[ "$(image "$V/web1.qcow2")" = 'qcow2 85899345920 -' ]            # 50G, grown to 80G
[ "$(image "$V/web2.qcow2")" = 'qcow2 1073741824 golden.qcow2' ]  # an overlay on the 1G golden image
[ "$(image "$V/import.raw")" = 'raw 1073741824 -' ]
[ ! -e "$V/old.raw" ] && [ ! -e "$V/old.qcow2" ] && [ "$(ls "$V"/archive/old-*.qcow2 | wc -l)" = 2 ]
# the VMs: web1 (restarted with 2G) and db1 run, build is defined and stopped, oldvm never existed
vmctl status > "$VMM_LAB_BASE/status"
awk '$NF == "web1" {print $(NF-1), $4}' "$VMM_LAB_BASE/status" | grep -qx 'running 2.0G'
awk '$NF == "db1" {print $(NF-1)}' "$VMM_LAB_BASE/status" | grep -qx running
awk '$NF == "build" {print $(NF-1)}' "$VMM_LAB_BASE/status" | grep -qx stopped
! grep -q oldvm "$VMM_LAB_BASE/status" "$R/etc/vm.conf" || exit 1
# web1's install ended (its console kept, its response file gone from the docroot); db1's was only published
grep -q 'CONGRATULATIONS' "$R/var/log/vmm/web1-install.log"
[ ! -e "$R/var/www/htdocs/fe:e1:bb:d1:00:01-install.conf" ]
grep -E '^(System hostname|IPv4 address|Default IPv4|DNS) ' "$R/var/www/htdocs/fe:e1:bb:d1:00:02-install.conf" | diff -u - <(printf '%s\n' \
    'System hostname = db1' 'IPv4 address for vio0 = 192.0.2.20/24' 'Default IPv4 route = 192.0.2.1' \
    'DNS domain name = example.com' 'DNS nameservers = 192.0.2.53')
[ -s "$R/var/www/htdocs/fe:e1:bb:d1:00:02-disklabel" ]
