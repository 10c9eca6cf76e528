#!/usr/bin/env bash
# openbsd.vmm.vmm_run_lock through real ansible-playbook runs on the controller: a run holds the lock from one task
# to a later one (its file names that ansible-playbook process); a second run is refused while it lives, and so is
# playbooks/migrate.yml before it touches the journal or its transfer directory; the lock of a run killed with -9 is
# taken over by the next run, which names it; a run that ends normally, or fails, leaves no file.
set -eux
here=$(dirname "$(readlink -f "$0")")
COLL=$(readlink -f "${ANSIBLE_COLLECTIONS_PATH%%:*}/ansible_collections/openbsd/vmm")
T=$(mktemp -d /tmp/vmm-run-lock.XXXXXX)
holder=
cleanup() {
    if [ -n "$holder" ]; then kill -9 -- "-$holder" 2>/dev/null || true; fi
    rm -rf "$T"
}
trap cleanup EXIT
lock=$T/fleet.vmm.migrate.json.lock
export ANSIBLE_LOCALHOST_WARNING=false ANSIBLE_INVENTORY_UNPARSED_WARNING=false

cat > "$T/hold.yml" <<'PLAY'
- hosts: localhost
  gather_facts: false
  tasks:
    - openbsd.vmm.vmm_run_lock:
        path: "{{ lock }}"
      register: taken
    - ansible.builtin.copy:
        content: "{{ taken | to_json }}"
        dest: "{{ out }}"
        mode: "0600"
    - openbsd.vmm.vmm_run_lock:
        path: "{{ lock }}"
      register: again
    - ansible.builtin.assert:
        that: taken.taken and not again.taken and taken is not changed and again is not changed
    - ansible.builtin.wait_for:
        path: "{{ go }}"
        timeout: 300
    - openbsd.vmm.vmm_run_lock:
        path: "{{ lock }}"
        state: absent
      register: released
    - ansible.builtin.assert:
        that: released.released and released is not changed
PLAY

# a run that holds the lock until $T/go exists; its process group is its pid, so the kill below takes its workers too
hold() {
    rm -f "$T/held.json" "$T/go"
    set -m
    ansible-playbook "$T/hold.yml" -e "lock=$lock out=$T/held.json go=$T/go" > "$T/hold.log" 2>&1 &
    holder=$!
    set +m
    for _ in $(seq 600); do [ -s "$T/held.json" ] && break; kill -0 "$holder"; sleep 0.2; done
    [ -s "$T/held.json" ]
}
# its go file is the file it writes: it does not wait
take() { ansible-playbook "$T/hold.yml" -e "lock=$lock out=$T/taken.json go=$T/taken.json" > "$T/take.log" 2>&1; }
lockpid() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["pid"])' "$lock"; }

# 1. held by a live run: its file names that ansible-playbook process
hold
[ "$(lockpid)" = "$holder" ]
grep -q "ansible-playbook $T/hold.yml" "$lock"
[ "$(stat -c %a "$lock")" = 600 ]
if take; then echo "a second run took a held lock"; exit 1; fi
grep -q "another run holds $lock: pid $holder on $(hostname)" "$T/take.log"

# 2. migrate.yml stops at the lock: it neither reads the journal nor empties the transfer directory of the run
mkdir -p "$T/fleet.vmm.migrate.json.transfer"
echo "the other run's image" > "$T/fleet.vmm.migrate.json.transfer/0"
printf 'vmm1 ansible_connection=local\nvmm2 ansible_connection=local\n' > "$T/hosts"
if ansible-playbook -i "$T/hosts" "$COLL/playbooks/migrate.yml" -e migrate_from=vmm1 -e '{"migrate_vms": ["web1"]}' \
    -e migrate_to=vmm2 -e "migrate_journal=$T/fleet.vmm.migrate.json" > "$T/migrate.log" 2>&1; then
    echo "migrate.yml ran beside a run holding its journal's lock"; exit 1
fi
grep -q "another run holds $lock: pid $holder" "$T/migrate.log"
grep -q "the other run's image" "$T/fleet.vmm.migrate.json.transfer/0"
[ ! -e "$T/fleet.vmm.migrate.json" ]

# 3. the holder ends normally: no file left, the next run takes it and leaves none either
touch "$T/go"
wait "$holder"
holder=
[ ! -e "$lock" ]
take
[ ! -e "$lock" ]
# a migrate.yml that fails after taking the lock (these hosts have no vmd) releases it; the other run's transfer
# directory, from a run that no longer holds the lock, is cleaned up
if ansible-playbook -i "$T/hosts" "$COLL/playbooks/migrate.yml" -e migrate_from=vmm1 -e '{"migrate_vms": ["web1"]}' \
    -e migrate_to=vmm2 -e "migrate_journal=$T/fleet.vmm.migrate.json" > "$T/migrate.log" 2>&1; then
    echo "migrate.yml moved a VM between hosts without vmd"; exit 1
fi
grep -q "Read the VMs of every host taking part" "$T/migrate.log"
grep -q "TASK \[Let the next run in\]" "$T/migrate.log"
[ ! -e "$lock" ] && [ ! -e "$T/fleet.vmm.migrate.json.transfer" ]

# 4. the holder is killed (no release): the file stays until the next run takes it over and names the killed run
hold
killed=$holder
kill -9 -- "-$holder"
wait "$holder" || true
holder=
[ "$(lockpid)" = "$killed" ]
take
python3 - "$T/taken.json" "$killed" <<'CHECK'
import json, sys
taken = json.load(open(sys.argv[1]))
assert taken['taken'] and taken['replaced']['pid'] == int(sys.argv[2]), taken
assert 'took over the lock of a run that ended without releasing it: pid %s' % sys.argv[2] in taken['msg'], taken
CHECK
grep -q "WARNING.*took over the lock of a run that ended without releasing it: pid $killed on $(hostname)" "$T/take.log"
[ ! -e "$lock" ]
ls -A "$T" | grep -v -e '^hold.yml$' -e '\.log$' -e '\.json$' -e '^hosts$' -e 'transfer$' && exit 1
echo "vmm_run_lock: all passed"
