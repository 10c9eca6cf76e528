#!/usr/bin/env bash
# playbooks/build_image.yml against the lab: the image is installed with the sealing install.site,
# read-only, described by a manifest that agrees with qemu-img and sha256sum; a second run changes
# nothing (manifest included); other inputs for a sealed image are refused without touching it, and
# rebuilt with build_image_force_rebuild only when no overlay is built on it (the old one archived).
# A build killed during the install (or later) leaves nothing at the image's path and the next run
# starts clean; one killed between the image and its manifest is completed by the next run.
set -eux
here=$(dirname "$(readlink -f "$0")")
. "$here/../setup_lab/files/lab_host.sh" playbook_build_image
# playbooks/host.yml (vmm_host, install_server) makes the host ready from the lab's stand-in mirror as
# on a real host: verified sets in the docroot, httpd on 127.0.0.1, pf's rdr-to.
ansible-playbook -i "$here/inventory.yml" "$COLL/playbooks/host.yml" 2>&1 | tee "$L/host.log"
[ "${PIPESTATUS[0]}" = 0 ]
rcctl check httpd
pfctl -a openbsd-vmm -sr | grep -q 'rdr-to 127.0.0.1 port 80'

image=$L/var/vmm/golden.qcow2
manifest=$image.manifest.json
play() { ansible-playbook -i "$here/inventory.yml" "$COLL/playbooks/build_image.yml" "$@" 2>&1 | tee "$L/play.log"; return "${PIPESTATUS[0]}"; }
recap() { grep -E '^labhost +:' "$L/play.log"; }
field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$manifest" "$1"; }

# 0. check mode on a host without the image: says what it would do, creates nothing
play --check
recap | grep -q ' failed=0 '
grep -q "check mode: $image would be created" "$L/play.log"
[ ! -e "$image" ] && [ ! -e "$L/var/vmm" ]

# 1. a build killed during the install (ansible-playbook and the module, with -9; then the install VM):
# nothing at the image's path; while the install VM holds the install disk the next run refuses, naming
# it; once it is gone the next run removes what the build left and builds the image from the start
build=$L/var/vmm/.golden.qcow2.build
mkdir -p "$L/killremote"
ANSIBLE_REMOTE_TMP="$L/killremote" setsid ansible-playbook -i "$here/inventory.yml" "$COLL/playbooks/build_image.yml" \
    >"$L/killed.log" 2>&1 &
leader=$!
vm_pid=
for i in $(seq 600); do
    vm_pid=$(vmctl status -r | awk '$NF ~ /^golden-ai-/ && $2 ~ /^[0-9]+$/ {print $2}')
    [ -n "$vm_pid" ] && break
    sleep 0.1
done
vm_name=$(vmctl status -r | awk '$NF ~ /^golden-ai-/ {print $NF}')
[ -n "$vm_pid" ] || { cat "$L/killed.log"; echo "the install VM never ran" >&2; exit 1; }
# the install is under way, on the install disk in the build directory, not on the image
[ -f "$build/install.qcow2" ] && [ ! -e "$image" ]
# Ansible's worker runs in a session of its own: its process group is found by this run's remote tmp path
module=$(pgrep -f "$L/killremote/.*AnsiballZ_vmm_autoinstall" | head -1)
[ -n "$module" ]
group=$(ps -o pgid= -p "$module" | tr -d ' ')
pids=$(pgrep -g "$group" | tr '\n' ' ')
# the install VM is held where it is (paused, it keeps vmd's lock on the install disk), the run killed
vmctl pause "$vm_name"
kill -9 -- "-$group" "-$leader"
wait "$leader" || true
# reaped, not only dead (a zombie still answers kill -0, and vmd frees the disk's lock only then)
reaped() {
    for i in $(seq 300); do
        alive=0; for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && return 0; sleep 0.1
    done
    echo "the killed processes were not reaped in 30 s: $*" >&2; return 1
}
reaped $pids
if play; then
    echo "build_image.yml went on while the killed build's install VM held its disk" >&2
    exit 1
fi
grep -q "the install disk of an interrupted build, $build/install.qcow2, cannot be removed (.*in use.*). Install VMs of golden that run: $vm_name\." "$L/play.log"
[ ! -e "$image" ] && [ -f "$build/install.qcow2" ]
kill -9 "$vm_pid"
reaped "$vm_pid"
for i in $(seq 300); do vmctl status -r | grep -q ' golden-ai-' || break; sleep 0.1; done
! vmctl status -r | grep -q ' golden-ai-'
[ ! -e "$image" ] && [ ! -e "$manifest" ] && [ -f "$build/install.qcow2" ]
# what a build killed later would leave too: a compacted image, vmctl create -i's half copy, a manifest
printf 'QFI\373half' >"$build/image.qcow2"
printf 'QFI\373half' >"$build/.image.qcow2.vmm_disk-0badc0de.tmp"
echo '{}' >"$build/image.qcow2.manifest.json"
play
recap | grep -q ' failed=0 '
# nothing of the killed build is left: no build directory, no temporary file beside the image, no
# published response file or site set, no install VM
[ ! -e "$build" ]
[ -z "$(find "$L/var/vmm" -maxdepth 1 -name '.golden*')" ]
[ -z "$(ls "$L"/var/www/htdocs/*-install.conf "$L"/var/www/htdocs/pub/OpenBSD/7.8/amd64/site78*.tgz 2>/dev/null)" ]
! vmctl status -r | grep -q ' golden-ai-'
[ "$(stat -c %a "$image")" = 444 ]
[ "$(stat -c %a "$manifest")" = 444 ]
# the manifest agrees with qemu-img and sha256sum
qemu-img check -q "$image"
info=$(qemu-img info --output=json "$image")
qemu() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$info" "$1"; }
[ "$(field format)" = "$(qemu format)" ]
[ "$(field virtual_size)" = "$(qemu virtual-size)" ]
[ "$(field virtual_size)" = 5368709120 ]
[ "$(field sha256)" = "$(sha256sum "$image" | cut -d' ' -f1)" ]
[ "$(field image)" = "$image" ]
[ "$(field release)" = 7.8 ] && [ "$(field arch)" = amd64 ]
[ "$(field autoinstall_manifest)" = "$image.autoinstall.json" ]
[ "$(field autoinstall_inputs_sha256)" = "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["inputs_sha256"])' "$image.autoinstall.json")" ]
grep -q 'CONGRATULATIONS!' "$(field console_log)"
grep -q "$image: OpenBSD 7.8/amd64, sha256 $(field sha256) (installed now)" "$L/play.log"
# the builder, every input's sha256, the layer chain and the packages
get() { python3 -c 'import json, sys
value = json.load(open(sys.argv[1]))
for key in sys.argv[2].split(":"):
    value = value[key]
print(value if isinstance(value, str) else json.dumps(value, sort_keys=True))' "$manifest" "$1"; }
[ "$(get builder:inventory_hostname)" = labhost ]
[ "$(get builder:hostname)" = "$(hostname)" ]
[ "$(get inputs:autoinstall)" = "$(field autoinstall_inputs_sha256)" ]
[ "$(get inputs:site_files)" = "{\"/etc/motd\": \"$(printf 'golden image of the lab\n' | sha256sum | cut -d' ' -f1)\"}" ]
sets_digest=$(sha256sum "$L/var/www/htdocs/pub/OpenBSD/7.8/amd64/SHA256" | cut -d' ' -f1)
[ "$(get inputs:sets)" = "$sets_digest" ]
[ "$(get layers)" = "[{\"image\": \"$image\", \"sha256\": \"$(field sha256)\"}]" ]
[ "$(get packages)" = "[]" ]
# what the installer put on the disk (read back by the lab): the site set with the sealing script ran
python3 - "$COLL/tests/lab" "$image" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
from labsim.installer import read_install_record
record = read_install_record(sys.argv[2])
assert record and record['completed'], record
assert record['install_site'] == {'present': True, 'executable': True, 'ran': True, 'failed': False}, record['install_site']
assert './install.site' in record['site_files'] and './etc/motd' in record['site_files'], record['site_files']
assert not any(s.startswith('game') or s.startswith('x') for s in record['sets']), record['sets']
# no root password in the image (issue 10, point 11): none in root's authorized_keys, no hash in master.passwd
assert '# root password' not in record['root_authorized_keys'], 'the image keeps the root password in clear'
assert record['root_authorized_keys'].startswith('ssh-ed25519 '), record['root_authorized_keys']
assert record['root_password_hash'] == '*' * 13, 'the image keeps a root password hash'
assert './root/.ssh/authorized_keys' not in record['site_files'], record['site_files']
# the sealing script the image ran is the one the manifest names by its digest
import hashlib, json
manifest = json.load(open(sys.argv[2] + '.manifest.json'))
assert hashlib.sha256(record['install_site_script'].encode()).hexdigest() == manifest['inputs']['seal_script'], manifest['inputs']
PY
# vmm_image_info chooses the image by its manifest (release and the sets' digest) among two: a copy
# whose manifest names other sets is not chosen
cp --sparse=always "$image" "$L/var/vmm/other.qcow2"
sed "s/$sets_digest/$(echo other | sha256sum | cut -d' ' -f1)/" "$manifest" >"$L/var/vmm/other.qcow2.manifest.json"
ansible-playbook -i "$here/inventory.yml" "$here/choose.yml" -e "image_dir=$L/var/vmm sets_digest=$sets_digest expected_image=$image"
rm "$L/var/vmm/other.qcow2" "$L/var/vmm/other.qcow2.manifest.json"
# the site set left the docroot once the install ended
[ -z "$(ls "$L"/var/www/htdocs/pub/OpenBSD/7.8/amd64/site78*.tgz 2>/dev/null)" ]

# 2. again (and in check mode): nothing changes, the manifest (and its build time) stays
sum_before=$(sha256sum "$image" "$manifest")
play --check
recap | grep -q ' changed=0 .* failed=0 '
play
recap | grep -q ' changed=0 .* failed=0 '
grep -q "$image: OpenBSD 7.8/amd64, sha256 $(field sha256)\"" "$L/play.log"
[ "$(sha256sum "$image" "$manifest")" = "$sum_before" ]

# 3. other inputs for the sealed image: refused before anything is installed
if play -e '{"build_image_sets": ["-game*"]}'; then
    echo "build_image.yml reinstalled a sealed image" >&2
    exit 1
fi
grep -q 'is a sealed image' "$L/play.log"
[ "$(sha256sum "$image" "$manifest")" = "$sum_before" ]
# other sets in the docroot (another SHA256 file) are other inputs too
sets_sums=$L/var/www/htdocs/pub/OpenBSD/7.8/amd64/SHA256
cp -p "$sets_sums" "$L/SHA256"
echo "SHA256 (comp78.tgz) = $(echo other | sha256sum | cut -d' ' -f1)" >>"$sets_sums"
if play; then
    echo "build_image.yml kept an image of other sets" >&2
    exit 1
fi
grep -q 'is a sealed image' "$L/play.log"
cp -p "$L/SHA256" "$sets_sums"
# a manifest written before it listed every input: judged by the install's digest, left as it is
chmod u+w "$manifest"
cp -p "$manifest" "$L/manifest.json"
python3 -c 'import json, sys; m = json.load(open(sys.argv[1])); del m["inputs"]; json.dump(m, open(sys.argv[1], "w"))' "$manifest"
old_manifest=$(sha256sum "$manifest")
play
recap | grep -q ' changed=0 .* failed=0 '
[ "$(sha256sum "$manifest")" = "$old_manifest" ]
cp -p "$L/manifest.json" "$manifest"
[ "$(sha256sum "$image" "$manifest")" = "$sum_before" ]

# 3b. a build killed between putting the image in place and its manifest: the next run puts the
# manifest (still in the build directory) in place, as it describes this very image, and builds nothing
mkdir -p "$build"
mv "$manifest" "$build/image.qcow2.manifest.json"
play
recap | grep -q ' changed=2 .* failed=0 '
[ ! -e "$build" ]
[ "$(sha256sum "$image" "$manifest")" = "$sum_before" ]
# an image without a manifest that no build describes is not this playbook's: refused, left as it is
mv "$manifest" "$L/manifest.json"
if play; then
    echo "build_image.yml took over an image it did not build" >&2
    exit 1
fi
grep -q "$image exists without a manifest" "$L/play.log"
mkdir -p "$build"
sed 's/"sha256": "[0-9a-f]*"/"sha256": "0000"/' "$L/manifest.json" >"$build/image.qcow2.manifest.json"
if play; then
    echo "build_image.yml put a manifest in place that describes another image" >&2
    exit 1
fi
grep -q "$image exists without a manifest" "$L/play.log"
rm -r "$build"
mv "$L/manifest.json" "$manifest"
[ "$(sha256sum "$image" "$manifest")" = "$sum_before" ]

# 4. a forced rebuild is refused while an overlay is built on the image (naming it); once the overlay
# is gone, the image is installed anew with the new inputs and the old one archived with its manifest
vmctl create -b "$image" "$L/var/vmm/web1.qcow2"
if play -e '{"build_image_timezone": "Europe/Amsterdam", "build_image_force_rebuild": true}'; then
    echo "build_image.yml rebuilt an image an overlay uses" >&2
    exit 1
fi
grep -q "build_image_force_rebuild: $image is not rebuilt: these overlays are built on it and would be corrupted: $L/var/vmm/web1.qcow2" "$L/play.log"
[ "$(sha256sum "$image" "$manifest")" = "$sum_before" ]
rm "$L/var/vmm/web1.qcow2"
play -e '{"build_image_timezone": "Europe/Amsterdam", "build_image_force_rebuild": true}'
recap | grep -q ' failed=0 '
old=$(ls "$L"/var/vmm/archive/golden-*.qcow2)
# the archived image and manifest are the ones built in step 1, byte for byte
[ "$(sha256sum "$old" | cut -d' ' -f1)" = "$(echo "$sum_before" | sed -n '1s/ .*//p')" ]
[ "$(sha256sum "$old.manifest.json" | cut -d' ' -f1)" = "$(echo "$sum_before" | sed -n '2s/ .*//p')" ]
qemu-img check -q "$image"
[ "$(field sha256)" = "$(sha256sum "$image" | cut -d' ' -f1)" ]
[ "$(field sha256)" != "$(sha256sum "$old" | cut -d' ' -f1)" ]
[ "$(field autoinstall_inputs_sha256)" != "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["autoinstall_inputs_sha256"])' "$old.manifest.json")" ]
grep -q 'Europe/Amsterdam' "$(field console_log)"
# the next run with the same inputs changes nothing
play -e '{"build_image_timezone": "Europe/Amsterdam", "build_image_force_rebuild": true}'
recap | grep -q ' changed=0 .* failed=0 '
