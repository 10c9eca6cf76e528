#!/usr/bin/env bash
# playbooks/build_image.yml with build_image_variants against the lab: two images (golden-a, and golden-b
# without the compiler set) built at once on one host in one run, each as a build of its own
# (labhost/golden-a, labhost/golden-b): both install VMs ran at the same time (vmd's log), each with its own
# MAC, response file and site set; both images are whole and described; the run reports each one; a second
# run changes nothing. Bad variants are refused, naming the variant and the rule, before anything is made.
set -eux
here=$(dirname "$(readlink -f "$0")")
. "$here/../setup_lab/files/lab_host.sh" playbook_build_image_variants
ansible-playbook -i "$here/inventory.yml" "$COLL/playbooks/host.yml" >"$L/host.log" 2>&1 || { cat "$L/host.log"; exit 1; }

play() { ansible-playbook -i "$here/inventory.yml" "$COLL/playbooks/build_image.yml" "$@" 2>&1 | tee "$L/play.log"; return "${PIPESTATUS[0]}"; }
a=$L/var/vmm/golden-a.qcow2
b=$L/var/vmm/golden-b.qcow2
get() { python3 -c 'import json, sys
value = json.load(open(sys.argv[1]))
for key in sys.argv[2].split(":"):
    value = value[key]
print(value if isinstance(value, str) else json.dumps(value, sort_keys=True))' "$1" "$2"; }

# 0. bad variants: refused with the variant and the rule named, nothing made
bad() { if play -e "$1"; then echo "build_image.yml took $1" >&2; exit 1; fi; grep -q "$2" "$L/play.log"; [ ! -e "$L/var/vmm" ]; }
bad "{\"build_image_variants\": [{\"name\": \"x\", \"path\": \"$a\"}, {\"name\": \"y\", \"path\": \"$a\"}]}" \
    "build_image_variants\[1\] (y): path $a is also that of build_image_variants\[0\]"
bad '{"build_image_variants": [{"name": "x", "path": "relative.qcow2"}]}' \
    "build_image_variants\[0\] (x): path 'relative.qcow2' must be an absolute, normalised file path"
bad "{\"build_image_variants\": [{\"name\": \"x\", \"path\": \"$a\", \"colour\": 1}]}" \
    "build_image_variants\[0\] (x): unknown key(s) colour"
bad "{\"build_image_variants\": [{\"name\": \"-x\", \"path\": \"$a\"}]}" \
    "build_image_variants\[0\] (-x): name '-x' must be 1 to 51 letters"

# 1. both variants, in one run
play
grep -E '^labhost/golden-[ab] +:' "$L/play.log" | grep -c ' failed=0 ' | grep -qx 2
for image in "$a" "$b"; do
    qemu-img check -q "$image"
    [ "$(stat -c %a "$image")" = 444 ]
    [ "$(get "$image.manifest.json" sha256)" = "$(sha256sum "$image" | cut -d' ' -f1)" ]
    [ "$(get "$image.manifest.json" image)" = "$image" ]
    [ "$(get "$image.manifest.json" builder:inventory_hostname)" = labhost ]
    grep -q 'CONGRATULATIONS!' "$image.install.log"
    # the run's summary names the image, its sha256 and that it was built now
    grep -q "\"labhost/$(basename "$image" .qcow2): $image sha256 $(get "$image.manifest.json" sha256) changed\"" "$L/play.log"
done
[ "$(get "$a.manifest.json" sets)" = '["-game*", "-x*"]' ]
[ "$(get "$b.manifest.json" sets)" = '["-game*", "-x*", "-comp*"]' ]
# each its own MAC (so its own response file <mac>-install.conf) and its own site set
mac_a=$(get "$a.autoinstall.json" mac); mac_b=$(get "$b.autoinstall.json" mac)
[ -n "$mac_a" ] && [ "$mac_a" != "$mac_b" ]
[ "$(get "$a.autoinstall.json" site_set)" = site78-golden-a.tgz ] && [ "$(get "$b.autoinstall.json" site_set)" = site78-golden-b.tgz ]
# what each installer put on its disk: its own sets, and its site set (listed in index.txt while both
# installs added and dropped theirs) with the sealing script ran
python3 - "$COLL/tests/lab" "$a" "$b" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
from labsim.installer import read_install_record
for image, comp in ((sys.argv[2], True), (sys.argv[3], False)):
    record = read_install_record(image)
    assert record and record['completed'], (image, record)
    assert record['install_site'] == {'present': True, 'executable': True, 'ran': True, 'failed': False}, (image, record['install_site'])
    assert any(s.startswith('comp') for s in record['sets']) == comp, (image, record['sets'])
PY
# the two install VMs ran at the same time: both started (vmd's log) before either stopped
python3 - "$L" <<'PY'
import re, sys
lines = open(sys.argv[1] + '/var/log/vmd.log').read().splitlines()
events = [(m.group(1), m.group(2)) for m in (re.search(r' (golden-[ab])-ai-\S+: (started|.*stopped)', l) for l in lines) if m]
print(events)
started = {name: i for i, (name, what) in enumerate(events) if what == 'started'}
stopped = {name: i for i, (name, what) in enumerate(events) if what != 'started'}
assert set(started) == set(stopped) == {'golden-a', 'golden-b'}, events
assert max(started.values()) < min(stopped.values()), 'the two installs did not overlap: %s' % events
PY
# nothing of either build is left: no build directory, no published response file or site set
[ -z "$(find "$L/var/vmm" -maxdepth 1 -name '.golden*')" ]
[ -z "$(ls "$L"/var/www/htdocs/*-install.conf "$L"/var/www/htdocs/pub/OpenBSD/7.8/amd64/site78*.tgz 2>/dev/null)" ]
! grep -q site78 "$L/var/www/htdocs/pub/OpenBSD/7.8/amd64/index.txt"

# 2. a second run changes nothing, and says so for each
play
grep -E '^labhost/golden-[ab] +:' "$L/play.log" | grep -c ' changed=0 .* failed=0 ' | grep -qx 2
for image in "$a" "$b"; do
    grep -q "\"labhost/$(basename "$image" .qcow2): $image sha256 $(get "$image.manifest.json" sha256) unchanged\"" "$L/play.log"
done

# 3. --limit without the variants: the run says they were not built
if play --limit labhost; then echo "build_image.yml said nothing of the variants --limit left out" >&2; exit 1; fi
grep -q "labhost/golden-a, labhost/golden-b: not built (it failed above, or --limit left it out" "$L/play.log"
play --limit 'labhost*'
grep -E '^labhost/golden-[ab] +:' "$L/play.log" | grep -c ' changed=0 .* failed=0 ' | grep -qx 2
