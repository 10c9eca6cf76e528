#!/usr/bin/env bash
# playbooks/build_image.yml against the lab: the image is installed with the sealing install.site,
# read-only, described by a manifest that agrees with qemu-img and sha256sum; a second run changes
# nothing (manifest included); other inputs for a sealed image are refused without touching it, and
# rebuilt with build_image_force_rebuild only when no overlay is built on it (the old one archived).
set -eux
here=$(dirname "$(readlink -f "$0")")
# ansible-test runs a copy of this directory; the lab and the playbooks come with the collection.
COLL=$(readlink -f "${ANSIBLE_COLLECTIONS_PATH%%:*}/ansible_collections/openbsd/vmm")
# this run's own lab root (inventory.yml reads it from the environment), removed at the end
VMM_LAB_ROOT=$(mktemp -d /tmp/vmm-lab-playbook_build_image.XXXXXX)
chmod 755 "$VMM_LAB_ROOT"  # as a root made by lab init
export PATH="$COLL/tests/lab/bin:$PATH" VMM_LAB_ROOT
L=$VMM_LAB_ROOT
trap 'lab vmd stop >/dev/null 2>&1 || true; rm -rf "$L"' EXIT
lab init
lab vmd start
# A stand-in OpenBSD mirror; playbooks/host.yml (vmm_host, install_server) makes the host ready
# from it as on a real host: verified sets in the docroot, httpd on 127.0.0.1, pf's rdr-to.
lab mirror "$L/mirror" 7.8 amd64 >/dev/null
cp "$COLL/tests/lab/bin/MAKEDEV" "$L/dev/"
export LAB_PYTHON="$COLL/tests/lab/bin/python3-openbsd"
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

# 1. build
play
recap | grep -q ' failed=0 '
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
PY
# the site set left the docroot once the install ended
[ -z "$(ls "$L"/var/www/htdocs/pub/OpenBSD/7.8/amd64/site78*.tgz 2>/dev/null)" ]

# 2. again (and in check mode): nothing changes, the manifest (and its build time) stays
sum_before=$(sha256sum "$image" "$manifest")
play --check
recap | grep -q ' changed=0 .* failed=0 '
play
recap | grep -q ' changed=0 .* failed=0 '
[ "$(sha256sum "$image" "$manifest")" = "$sum_before" ]

# 3. other inputs for the sealed image: refused before anything is installed
if play -e '{"build_image_sets": ["-game*"]}'; then
    echo "build_image.yml reinstalled a sealed image" >&2
    exit 1
fi
grep -q 'is a sealed image' "$L/play.log"
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
