from __future__ import annotations

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.openbsd.vmm.plugins.filter.vmm_local_addresses import vmm_local_addresses


def test_first_local_interface_with_an_address():
    vms = [
        {'name': 'web1', 'interfaces': [{'switch': 'uplink'}, {'local': True, 'address': '100.64.3.3'},
                                        {'local': True, 'address': '100.64.3.5'}]},
        {'name': 'web2', 'interfaces': [{'local': True}]},          # stopped: no address
        {'name': 'db1', 'interfaces': [{'switch': 'uplink', 'address': '192.0.2.9'}]},
        {'name': 'app1'},
    ]
    assert vmm_local_addresses(vms) == {'web1': '100.64.3.3'}


def test_empty_and_bad_input():
    assert vmm_local_addresses([]) == {}
    with pytest.raises(AnsibleFilterError, match='every VM record needs a name'):
        vmm_local_addresses([{'interfaces': []}])
    with pytest.raises(AnsibleFilterError, match='expects a list of VM records, got dict'):
        vmm_local_addresses({'name': 'web1'})
