"""After record_state.yml: web1 (a local interface) is reached at the address vmd gave it, from the state file.

stdin: `ansible-inventory --list`; argv: the state file, web1's vm id (vmctl status).
"""
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


data = plain(json.load(sys.stdin))
state_file, vm_id = sys.argv[1], int(sys.argv[2])
hostvars = data['_meta']['hostvars']
with open(state_file, encoding='utf-8') as handle:
    state = json.load(handle)
# priv.c vm_priv_addr with 100.64.0.0/10: 100.64.<id>.2 on the host's tap, .3 for the VM (interface 0)
expected = '100.64.%d.3' % vm_id
assert state['version'] == 1 and state['guests']['web1'] == {
    'host': 'labhost', 'address': expected, 'placed': state['guests']['web1']['placed']}, state
assert hostvars['web1']['address'] == hostvars['web1']['ansible_host'] == expected, hostvars['web1']
assert hostvars['web1']['ssh_target'] == 'root@' + expected, hostvars['web1']
assert state['guests']['ci1']['host'] == 'labhost' and hostvars['ci1']['vmm_guest']['placed'] == \
    state['guests']['ci1']['placed'], (state, hostvars['ci1'])
print('state ok')
