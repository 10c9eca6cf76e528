#!/usr/bin/env bash
# A fleet that answers: two lab hosts x 40 guests on a switch, provisioned from one golden image by
# playbooks/provision.yml with the openbsd.vmm.vmm inventory plugin. Every guest gets its inventory
# address from dhcpd (static leases the run wrote), answers SSH with the image's key at that address
# and has its first-boot configuration; `ansible -m ping` reaches all 80. A second run changes nothing
# and asks vmctl once per host. Then: a guest removed (definition, lease gone, disk archived), a
# capacity error and an address collision refused before any change, placements kept when a host is
# added to the fleet.
set -eux
here=$(dirname "$(readlink -f "$0")")
per_host=${VMM_FLEET_PER_HOST:-40}
. "$here/../setup_lab/files/lab_hosts.sh" playbook_fleet vmm1 vmm2
if ! reason=$(lab net-check 2>&1); then
    echo "SKIPPED playbook_fleet: the lab cannot make network namespaces here ($reason); no guest can answer SSH" >&2
    exit 0
fi
# the provisioning key: the golden image carries its public half (build_image_root_ssh_key)
ssh-keygen -q -t ed25519 -N '' -C fleet@controller -f "$VMM_LAB_BASE/id_ed25519"
export ANSIBLE_HOST_KEY_CHECKING=False ANSIBLE_PIPELINING=True ANSIBLE_FORKS=20
# ansible-test turns deprecation warnings off; the first provision run below must show none
export ANSIBLE_DEPRECATION_WARNINGS=True
export ANSIBLE_INVENTORY_ENABLED=openbsd.vmm.vmm,yaml
inv=$VMM_LAB_BASE/inventory
fleet=$inv/fleet.vmm.yml
state_file=$inv/fleet.vmm.state.json
# ... and one guest on a vmd local interface: no lease, it answers on the address vmd gave it (read after start)
python3 "$here/make_fleet.py" "$inv" "$per_host" --extra '[{"name": "vmm1loc", "memory": "128M"}]'
log=$VMM_LAB_BASE/play.log
play() { ansible-playbook -i "$fleet" "$@" 2>&1 | tee "$log"; return "${PIPESTATUS[0]}"; }
recap() { grep -E "^$1 +:" "$log"; }
calls() { wc -l < "$(root "$1")/lab/vmctl.calls"; }
confs() { cat "$(root vmm1)/etc/vm.conf" "$(root vmm2)/etc/vm.conf" "$(root vmm1)/etc/dhcpd.conf" "$(root vmm2)/etc/dhcpd.conf" | sha256sum; }

# hosts ready: switch veb0 with the host's address on vport0, dhcpd on vport0, httpd, pf
play "$COLL/playbooks/host.yml"
for h in $hosts; do recap "$h" | grep -q ' failed=0 '; done
on vmm1 ifconfig vport0 | grep -qx '.inet 198.51.100.1/24'
# one golden image, built on vmm1 and copied to vmm2 with its manifest
play "$COLL/playbooks/build_image.yml" --limit vmm1
mkdir -p "$(root vmm2)/var/vmm"
cp "$(root vmm1)/var/vmm/golden.qcow2" "$(root vmm1)/var/vmm/golden.qcow2.manifest.json" "$(root vmm2)/var/vmm/"

# 1. the fleet: 2 x $per_host guests
play "$COLL/playbooks/provision.yml"
for h in $hosts; do recap "$h" | grep -q ' failed=0 '; done
# nothing the next ansible-core removes (the first-boot digest's `bool` of a password text was one)
! grep -q 'DEPRECATION WARNING' "$log" || { grep 'DEPRECATION WARNING' "$log" >&2; exit 1; }
for h in $hosts; do
    [ "$(on "$h" vmctl status | grep -c ' running ')" = "$((per_host + $([ "$h" = vmm1 ] && echo 1 || echo 0)))" ]
    # a static lease per guest, accepted by ISC dhcpd's own parser as well
    [ "$(grep -c '^host ' "$(root "$h")/etc/dhcpd.conf")" = "$per_host" ]
    /usr/sbin/dhcpd -t -cf "$(root "$h")/etc/dhcpd.conf" >/dev/null 2>&1
done
grep -A2 '^host vmm1g01 ' "$(root vmm1)/etc/dhcpd.conf" | grep -q 'fixed-address 198.51.100.10;'
# every guest answers ansible.builtin.ping over SSH at its inventory address
ansible -i "$fleet" vmm_guests -m ansible.builtin.ping > "$VMM_LAB_BASE/ping.log" 2>&1 || { cat "$VMM_LAB_BASE/ping.log"; exit 1; }
[ "$(grep -c 'SUCCESS' "$VMM_LAB_BASE/ping.log")" = $((2 * per_host + 1)) ]
# the local-interface guest had its first boot at the address vmd gave it, which the state file keeps
ansible -i "$fleet" vmm1loc -m ansible.builtin.command -a hostname | grep -qx 'vmm1loc.lab.example'
[ "$(ansible-inventory -i "$fleet" --host vmm1loc | python3 -c 'import json,sys; print(json.load(sys.stdin)["ansible_host"])')" = "$(on vmm1 lab guest-address vmm1loc)" ]
[ "$(ansible-inventory -i "$fleet" --host vmm2g03 | python3 -c 'import json,sys; print(json.load(sys.stdin)["ansible_host"])')" = 203.0.113.12 ]
[ "$(on vmm2 lab guest-address vmm2g03)" = 203.0.113.12 ]
# first boot ran on the guest itself: its host name, in the guest's own files
ansible -i "$fleet" vmm1g02 -m ansible.builtin.command -a hostname | grep -qx 'vmm1g02.lab.example'
grep -qx 'vmm1g02.lab.example' "$(root vmm1)/guests/vmm1g02/etc/myname"
# no nameserver: the image's seal (install.site) dropped the one resolvd learned on the build network
# (vmd's 100.64.x.2, unreachable from a switch), and the fleet's dhcpd offers none
resolv=$(root vmm1)/guests/vmm1g02/etc/resolv.conf
[ -f "$resolv" ] && ! grep -q '^nameserver' "$resolv"
# its IPv6 address (198.51.100.11 -> the same offset in the host's /64), for the next boot's netstart
grep -qx 'inet6 fd00:198:51:100::b 64' "$(root vmm1)/guests/vmm1g02/etc/hostname.vio0"
# ... and its user: created with the key and a random password, delivered once, never printed
ansible -i "$fleet" vmm1g02 -m ansible.builtin.command -a 'id alice' | grep -q 'groups=.*(staff)'
keys=$(ansible -i "$fleet" vmm1g02 -m ansible.builtin.command -a 'cat /home/alice/.ssh/authorized_keys')
echo "$keys" | grep -q '^# password of alice (random, set when the user was created): [A-Za-z0-9]\{24\}$'
echo "$keys" | grep -qF "$(cut -d' ' -f1-2 "$VMM_LAB_BASE/id_ed25519.pub")"
password=$(echo "$keys" | sed -n 's/^# password of alice .*: //p')
! grep -qF "$password" "$log" || { echo "the random password was printed" >&2; exit 1; }
# the state file records every placement
python3 -c 'import json,sys; g=json.load(open(sys.argv[1]))["guests"]; assert len(g) == 2 * int(sys.argv[2]) + 1, len(g); assert g["vmm2g01"]["host"] == "vmm2"' "$state_file" "$per_host"

# 2. again: nothing changes, one vmctl call per host
before1=$(calls vmm1); before2=$(calls vmm2)
play "$COLL/playbooks/provision.yml"
for h in $hosts; do recap "$h" | grep -q ' changed=0 .* failed=0 '; done
[ $(($(calls vmm1) - before1)) = 1 ] && [ $(($(calls vmm2) - before2)) = 1 ]
# first boot again on one guest (provision_reconfigure): it runs and changes nothing; alice's random
# password is neither replaced nor delivered a second time
shadow=$(grep '^alice:' "$(root vmm1)/guests/vmm1g02/etc/shadow")
echo "$shadow" | grep -q '^alice:\$2b\$10\$[./A-Za-z0-9]\{53\}:'
# ... of the very password delivered in her authorized_keys (made once, hashed on the controller)
python3 -c 'import sys; from passlib.hash import bcrypt; assert bcrypt.verify(sys.argv[1], sys.argv[2].split(":")[1])' "$password" "$shadow"
# This time vmm1g02's first SSH attempt fails (its ProxyCommand refuses once, as a guest whose sshd is not
# up yet): the first-boot run finds it unreachable, waits (bounded) until it answers, then runs.
mkdir -p "$inv/host_vars"
cat > "$inv/host_vars/vmm1g02.yml" <<EOF
ansible_ssh_common_args: >-
  -o ProxyCommand="sh -c 'if mkdir $VMM_LAB_BASE/refused-once 2>/dev/null; then exit 1; fi; exec lab guest-connect --root $VMM_LAB_BASE/vmm1 %h %p'"
  -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR
EOF
play "$COLL/playbooks/provision.yml" --limit vmm1,vmm1g02,localhost -e provision_reconfigure=true
rm "$inv/host_vars/vmm1g02.yml"
[ -d "$VMM_LAB_BASE/refused-once" ]
recap vmm1g02 | grep -q ' changed=0 .* failed=0 .* ignored=1'
grep -A2 'TASK \[Wait (bounded) until the guest answers SSH' "$log" | grep -q '^ok: \[vmm1g02\]'
grep -qF 'openbsd.vmm.guest_firstboot : Host name, IPv6 address, users, keys (one module run on the guest)' "$log"
[ "$(grep '^alice:' "$(root vmm1)/guests/vmm1g02/etc/shadow")" = "$shadow" ]
[ "$(grep -c '^# password of alice ' "$(root vmm1)/guests/vmm1g02/home/alice/.ssh/authorized_keys")" = 1 ]
# A changed first-boot input (here the IPv6 address) configures that guest again, without
# provision_reconfigure: the state file's digest of its inputs no longer matches; its neighbours are left alone.
printf 'guest_firstboot_address6: "fd00:198:51:100::99"\n' > "$inv/host_vars/vmm1g01.yml"
play "$COLL/playbooks/provision.yml" --limit vmm1,vmm1g01,vmm1g03,localhost
rm "$inv/host_vars/vmm1g01.yml"
recap vmm1g01 | grep -q ' changed=1 .* failed=0 '
grep -qE '^changed: \[vmm1g01\]' "$log"
! grep -qE '^(ok|changed): \[vmm1g03\]' "$log" || { echo "a guest whose inputs did not change was configured" >&2; exit 1; }
grep -qx 'inet6 fd00:198:51:100::99 64' "$(root vmm1)/guests/vmm1g01/etc/hostname.vio0"

# 3. one guest removed: stopped, out of vm.conf and dhcpd.conf, its disk archived with a timestamp
python3 - "$fleet" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
open(sys.argv[1], 'w').write(text.replace('{name: vmm2g02, memory: 128M, switch: uplink}',
                                          '{name: vmm2g02, memory: 128M, switch: uplink, state: absent}'))
PY
play "$COLL/playbooks/provision.yml" --limit vmm2
recap vmm2 | grep -q ' failed=0 '
[ -z "$(on vmm2 vmctl status | awk '$NF == "vmm2g02"')" ]
! grep -q '"vmm2g02"' "$(root vmm2)/etc/vm.conf" || exit 1
! grep -q '^host vmm2g02 ' "$(root vmm2)/etc/dhcpd.conf" || exit 1
[ ! -e "$(root vmm2)/var/vmm/vmm2g02.qcow2" ]
archived=$(ls "$(root vmm2)"/var/vmm/archive/vmm2g02-*.qcow2)
qemu-img check -q "$archived"

# 4. refused before any change: a guest no host has room for, an address already taken, a bad first-boot input
conf_before=$(confs)
cp "$fleet" "$VMM_LAB_BASE/fleet.saved"
printf 'guests:\n  - {name: huge1, memory: 64G, switch: uplink}\n' >> "$fleet"
if play "$COLL/playbooks/provision.yml"; then echo "a guest without room was accepted" >&2; exit 1; fi
grep -q 'no vmm host has room for guest huge1' "$log"
grep -q 'did the fleet file fail to parse' "$log"
grep -q 'vmm1 has' "$log" && grep -q 'vmm2 has' "$log"
cp "$VMM_LAB_BASE/fleet.saved" "$fleet"
python3 - "$fleet" <<'PY'
import sys
text = open(sys.argv[1]).read()
open(sys.argv[1], 'w').write(text.replace('{name: vmm1g02, memory: 128M, switch: uplink}',
                                          '{name: vmm1g02, memory: 128M, switch: uplink}\n      - {name: dup1, switch: uplink, address: 198.51.100.10}'))
PY
if play "$COLL/playbooks/provision.yml"; then echo "an address collision was accepted" >&2; exit 1; fi
grep -q '198.51.100.10' "$log" && grep -q 'dup1' "$log" && grep -q 'vmm1g01' "$log"
[ "$(confs)" = "$conf_before" ]
cp "$VMM_LAB_BASE/fleet.saved" "$fleet"
# a bad first-boot input of one guest (vmm_firstboot_problems, once per host): refused with the guest,
# the variable and the rule, before vm.conf or dhcpd.conf change and before any guest is touched
mkdir -p "$inv/host_vars"
printf 'guest_firstboot_users: [{name: "-evil", shell: /bin/ksh}]\n' > "$inv/host_vars/vmm1g03.yml"
if play "$COLL/playbooks/provision.yml" -e provision_reconfigure=true; then echo "a bad guest_firstboot input was accepted" >&2; exit 1; fi
grep -qF 'vmm1g03: guest_firstboot_users[].name: \"-evil\" refused; must be a login name' "$log"
! grep -q 'Wait (bounded) until the guest answers SSH' "$log" || { echo "a guest was touched after a refused input" >&2; exit 1; }
[ "$(confs)" = "$conf_before" ]
rm "$inv/host_vars/vmm1g03.yml"

# 5. placement: guests without a host are placed once and stay when a host is added to the fleet
python3 "$here/make_fleet.py" "$VMM_LAB_BASE/placement" 2 --unplaced 3
pfleet=$VMM_LAB_BASE/placement/fleet.vmm.yml
host_of() { ansible-inventory -i "$pfleet" --host "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["vmm_host"])'; }
placed_before=$(for g in free01 free02 free03; do host_of $g; done | tr '\n' ' ')
# provision.yml's last play records placements; here the same filter writes the state file (no lab needed)
ansible -i "$pfleet" localhost -m ansible.builtin.copy -a "dest=$VMM_LAB_BASE/placement/fleet.vmm.state.json content={{ groups['vmm_hosts'] | map('extract', hostvars, 'vmm_guests') | flatten(levels=1) | openbsd.vmm.vmm_fleet_state | to_json }}" >/dev/null
python3 "$here/make_fleet.py" "$VMM_LAB_BASE/placement" 2 --unplaced 4 --hosts vmm1,vmm2,vmm3
placed_after=$(for g in free01 free02 free03; do host_of $g; done | tr '\n' ' ')
[ "$placed_after" = "$placed_before" ]
# the new guest goes to the new host, the one with the most room
[ "$(host_of free04)" = vmm3 ]

# 6. vmm_guest_firstboot's own EXAMPLES, run as written on a guest (they configure the machine they run on,
# so only a lab guest can run them): the first run changes the guest, the second changes nothing
python3 - "$COLL/plugins/modules/vmm_guest_firstboot.py" "$VMM_LAB_BASE/examples.yml" <<'PY'
import ast, sys
tree = ast.parse(open(sys.argv[1]).read())
examples = next(node.value.value for node in tree.body if isinstance(node, ast.Assign) and node.targets[0].id == 'EXAMPLES')
tasks = ''.join(('    ' + line if line else '') + '\n' for line in examples.strip('\n').splitlines())
open(sys.argv[2], 'w').write('- hosts: vmm2g01\n  gather_facts: false\n  vars:\n    alice_password: example-only-pw\n'
                             '  tasks:\n' + tasks)
PY
ansible-playbook -i "$fleet" "$VMM_LAB_BASE/examples.yml" > "$VMM_LAB_BASE/examples1.log" 2>&1 || { cat "$VMM_LAB_BASE/examples1.log"; exit 1; }
grep -qE '^vmm2g01 +: ok=1 +changed=1 .*failed=0' "$VMM_LAB_BASE/examples1.log"
ansible-playbook -i "$fleet" "$VMM_LAB_BASE/examples.yml" > "$VMM_LAB_BASE/examples2.log" 2>&1 || { cat "$VMM_LAB_BASE/examples2.log"; exit 1; }
grep -qE '^vmm2g01 +: ok=1 +changed=0 .*failed=0' "$VMM_LAB_BASE/examples2.log"
grep -qx 'web1.example.org' "$(root vmm2)/guests/vmm2g01/etc/myname"
grep -qx 'inet6 fd00:198:51:100::b 64' "$(root vmm2)/guests/vmm2g01/etc/hostname.vio0"
grep -q 'alice@laptop$' "$(root vmm2)/guests/vmm2g01/home/alice/.ssh/authorized_keys"
