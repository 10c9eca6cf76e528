#!/usr/bin/env bash
# openbsd.vmm.vmm_disk_send between two lab hosts over the lab's ssh (tests/lab/bin/ssh): a 3 MiB file sent at
# 1 MiB/s as an async job arrives byte for byte with its mode, its progress file shows every tenth in order before
# `done`, and the limit held (the send took at least as long as the limit allows); a send to a directory that does
# not exist fails naming the path and the host, ends its progress file with `failed:`, and leaves no `.send`
# behind; a second send of the same file takes over from a first one still running.
set -eux
here=$(dirname "$(readlink -f "$0")")
COLL=$(readlink -f "${ANSIBLE_COLLECTIONS_PATH%%:*}/ansible_collections/openbsd/vmm")
export PATH="$COLL/tests/lab/bin:$PATH"
B=$(mktemp -d /tmp/vmm-disk-send.XXXXXX)
trap 'rm -rf "$B"' EXIT
for h in vmm1 vmm2; do VMM_LAB_ROOT=$B/$h lab init >/dev/null; mkdir -p "$B/$h/var/vmm"; done
cat > "$B/inventory.yml" <<INV
all:
  hosts:
    vmm1: {lab_root: "$B/vmm1"}
  vars:
    ansible_connection: local
    ansible_python_interpreter: "$COLL/tests/lab/bin/python3-openbsd"
    vmm_environment: {VMM_LAB_ROOT: "{{ lab_root }}"}
INV
src=$B/vmm1/var/vmm/disk.qcow2
head -c 3145728 /dev/urandom > "$src"
dest=$B/vmm2/var/vmm/disk.qcow2
play() { ansible-playbook -i "$B/inventory.yml" "$here/send.yml" -e "src=$src" -e "out=$B/result.json" "$@" 2>&1 | tee "$B/play.log"; return "${PIPESTATUS[0]}"; }

# 1. sent at 1 MiB/s: every tenth shown as it is reached, the file whole on vmm2 with mode 0640
play -e "dest=$dest" -e bwlimit=1M
cmp "$src" "$dest"
[ "$(stat -c %a "$dest")" = 640 ]
[ ! -e "$dest.send" ]
[ "$(grep -o '(item=[0-9]* %)' "$B/play.log" | tr -d '()item= %' | tr '\n' ' ')" = "10 20 30 40 50 60 70 80 90 100 " ]
python3 - "$B/result.json" "$src" "$src.progress" <<'PY'
import hashlib, json, sys
result = json.load(open(sys.argv[1]))
data = open(sys.argv[2], "rb").read()
assert not result.get("failed") and result["changed"], result
assert (result["bytes"], result["sha256"], result["host"]) == (len(data), hashlib.sha256(data).hexdigest(), "vmm2"), result
# 1 MiB/s: 3 MiB cannot have gone in less than about 2 s (one 64 KiB chunk may go ahead of the limit)
assert result["seconds"] >= (len(data) - 65536) / 1048576.0 - 0.05, result
lines = open(sys.argv[3]).read().splitlines()
assert lines[0].startswith("pid "), lines
tenths = [line for line in lines[1:-1]]
assert tenths == ["%d%%" % n for n in range(0, 101, 10)], lines
assert lines[-1].startswith("done %d bytes in " % len(data)), lines
PY

# 2. to a directory vmm2 does not have: failed, named, nothing left there
rm -f "$src.progress"
play -e "dest=$B/vmm2/nosuch/disk.qcow2"
python3 - "$B/result.json" "$B/vmm2/nosuch/disk.qcow2" "$src.progress" <<'PY'
import json, sys
result = json.load(open(sys.argv[1]))
assert result.get("failed") and sys.argv[2] in result["msg"] and "vmm2" in result["msg"], result
assert open(sys.argv[3]).read().splitlines()[-1].startswith("failed: "), open(sys.argv[3]).read()
PY
[ -z "$(find "$B/vmm2" -name '*.send')" ]

# 2b. check mode, as migrate.yml checks a target before any change: one ssh call to vmm2, nothing sent
VMM_LAB_ROOT=$B/vmm1 ansible -i "$B/inventory.yml" vmm1 --check -m openbsd.vmm.vmm_disk_send \
    -a "src=$src dest=$dest.check host=vmm2 progress=$src.check.progress" > "$B/check.log"
grep -q 'vmm1 | CHANGED' "$B/check.log" && [ ! -e "$dest.check" ] && [ ! -e "$src.check.progress" ]
if VMM_LAB_ROOT=$B/vmm1 ansible -i "$B/inventory.yml" vmm1 --check -m openbsd.vmm.vmm_disk_send \
    -a "src=$src dest=$B/vmm2/nosuch/disk.qcow2 host=vmm2 progress=$src.check.progress" > "$B/check.log"; then
    echo "check mode passed a directory that vmm2 does not have" >&2; exit 1
fi
grep -q "cannot write $B/vmm2/nosuch on vmm2 as root over SSH (port 22, exit 1)" "$B/check.log"
[ -z "$(find "$B/vmm2" -name '*.send')" ]

# 3. a send still running (slowed to 64 KiB/s) is stopped by the next send of the same file, which finishes it
rm -f "$src.progress" "$dest"
VMM_LAB_ROOT=$B/vmm1 ansible -i "$B/inventory.yml" vmm1 -B 600 -P 0 -m openbsd.vmm.vmm_disk_send \
    -a "src=$src dest=$dest host=vmm2 bwlimit=64K progress=$src.progress"
for _ in $(seq 300); do grep -q '^10%$' "$src.progress" 2>/dev/null && break; sleep 0.1; done
first=$(sed -n 's/^pid //p' "$src.progress")
kill -0 "$first"
play -e "dest=$dest"
cmp "$src" "$dest"
for _ in $(seq 100); do kill -0 "$first" 2>/dev/null || break; sleep 0.1; done
! kill -0 "$first" 2>/dev/null
[ -z "$(find "$B/vmm2" -name '*.send')" ]
