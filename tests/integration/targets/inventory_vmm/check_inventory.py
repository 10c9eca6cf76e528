"""Check `ansible-inventory --list` output of fleet.vmm.yml (read from stdin); MACs and addresses recomputed here.

argv[1]: the state file the vmm hosts must name.
"""
import hashlib
import json
import re
import sys


def plain(value):
    """ansible-inventory marks some strings as {"__ansible_unsafe": ...}."""
    if isinstance(value, dict):
        if set(value) == {'__ansible_unsafe'}:
            return value['__ansible_unsafe']
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def mac(name):
    digest = hashlib.sha256(name.encode()).digest()
    return 'fe:e1:ba:d0:%02x:%02x' % (digest[0], digest[1])


data = plain(json.load(sys.stdin))
state_file = sys.argv[1]
hostvars = data['_meta']['hostvars']
assert sorted(data['vmm_hosts']['hosts']) == ['labhost', 'othervmm'], data['vmm_hosts']
assert sorted(data['vmm_guests']['hosts']) == ['app1', 'ci1', 'db1', 'web1'], data['vmm_guests']
# ci1 (no host) is placed on labhost: 2G - 256M - 512M = 1280M free there, othervmm 1G - 512M
assert sorted(data['labhost_guests']['hosts']) == ['ci1', 'db1', 'web1'], data['labhost_guests']
assert data['othervmm_guests']['hosts'] == ['app1'], data['othervmm_guests']
assert sorted(data['state_running']['hosts']) == ['app1', 'web1'], data
assert sorted(data['state_stopped']['hosts']) == ['ci1', 'db1'], data
web1, db1, app1, ci1 = hostvars['web1'], hostvars['db1'], hostvars['app1'], hostvars['ci1']
assert web1['vmm_host'] == 'labhost' and web1['lladdr'] == mac('web1'), web1
# a local interface: no address until the state file records the one vmd gave it
assert 'address' not in web1 and 'ansible_host' not in web1 and 'ssh_target' not in web1, web1
# index 9 after 1 reserved: 192.0.2.11; the same offset (11) in the /64
assert db1['address'] == '192.0.2.11' and db1['address6'] == '2001:db8:5::b' and db1['ssh_target'] == 'root@192.0.2.11', db1
assert db1['role'] == 'db' and db1['lladdr'] == mac('db1'), db1
# placed guests take the first free address of the pool
assert ci1['vmm_host'] == 'labhost' and ci1['address'] == ci1['ansible_host'] == '192.0.2.2', ci1
assert ci1['address6'] == '2001:db8:5::2' and ci1['lladdr'] == mac('ci1'), ci1
assert re.fullmatch(r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ', ci1['vmm_guest']['placed']), ci1
assert app1['lladdr'] == 'fe:e1:ba:d0:00:07' and app1['address'] == '198.51.100.7', app1
guests = hostvars['labhost']['vmm_guests']
assert [(g['name'], g['lladdr']) for g in guests] == [('web1', mac('web1')), ('db1', mac('db1')), ('ci1', mac('ci1'))], guests
assert 'ssh_target' not in hostvars['labhost']
# DHCP host entries of the switch guests (web1 is on vmd's local interface: vmd answers it)
assert hostvars['labhost']['vmm_guest_leases'] == [
    {'name': 'db1', 'mac': mac('db1'), 'address': '192.0.2.11'},
    {'name': 'ci1', 'mac': mac('ci1'), 'address': '192.0.2.2'}], hostvars['labhost']['vmm_guest_leases']
assert hostvars['othervmm']['vmm_guest_leases'] == [], hostvars['othervmm']
assert hostvars['labhost']['vmm_fleet_state_file'] == hostvars['othervmm']['vmm_fleet_state_file'] == state_file, hostvars
print('inventory ok')
