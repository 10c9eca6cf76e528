"""Check `ansible-inventory --list` output of fleet.vmm.yml (read from stdin); MACs recomputed here."""
import hashlib
import json
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
hostvars = data['_meta']['hostvars']
assert sorted(data['vmm_hosts']['hosts']) == ['labhost', 'othervmm'], data['vmm_hosts']
assert sorted(data['vmm_guests']['hosts']) == ['app1', 'db1', 'web1'], data['vmm_guests']
assert sorted(data['labhost_guests']['hosts']) == ['db1', 'web1'], data['labhost_guests']
assert data['othervmm_guests']['hosts'] == ['app1'], data['othervmm_guests']
assert sorted(data['state_running']['hosts']) == ['app1', 'web1'] and data['state_stopped']['hosts'] == ['db1'], data
web1, db1, app1 = hostvars['web1'], hostvars['db1'], hostvars['app1']
assert web1['vmm_host'] == 'labhost' and web1['lladdr'] == mac('web1'), web1
assert web1['address'] == web1['ansible_host'] == '192.0.2.2' and web1['ssh_target'] == 'root@192.0.2.2', web1
assert db1['address'] == '192.0.2.11' and db1['role'] == 'db' and db1['lladdr'] == mac('db1'), db1
assert app1['lladdr'] == 'fe:e1:ba:d0:00:07' and app1['address'] == '198.51.100.7', app1
guests = hostvars['labhost']['vmm_guests']
assert [(g['name'], g['lladdr']) for g in guests] == [('web1', mac('web1')), ('db1', mac('db1'))], guests
assert 'ssh_target' not in hostvars['labhost']
print('inventory ok')
