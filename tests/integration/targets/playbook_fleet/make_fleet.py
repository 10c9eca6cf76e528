"""Write a lab fleet file (openbsd.vmm.vmm inventory) and its guests' group_vars into a directory.

    make_fleet.py DIR GUESTS_PER_HOST [--hosts vmm1,vmm2] [--unplaced N] [--key PUBKEY_FILE]

Each lab host (its root is $VMM_LAB_BASE/<host>) gets a switch `uplink` (veb0, the host's address
on vport0), dhcpd on vport0 with the guests' static leases, and GUESTS_PER_HOST guests on the
switch named <host>g<NN>, with addresses from the host's pool. The guests are reached over SSH
through the lab's host namespace (`lab guest-connect`) with the key the golden image carries.
Used by this target's runme.sh and by benchmarks/fleet_scale.py.
"""

import argparse
import json
import os

# Documentation ranges only (RFC 5737), one per lab host.
NETWORKS = {'vmm1': '198.51.100', 'vmm2': '203.0.113', 'vmm3': '192.0.2'}

LAB_HOST = '''\
    ansible_connection: local
    ansible_python_interpreter: "{{ lookup('ansible.builtin.env', 'LAB_PYTHON', default=ansible_playbook_python) }}"
    ansible_become: false  # the lab runs as root already
    lab_root: "{{ lookup('ansible.builtin.env', 'VMM_LAB_BASE') }}/{{ inventory_hostname }}"
    vmm_environment: {VMM_LAB_ROOT: "{{ lab_root }}"}
    vmm_disk_dir: "{{ lab_root }}/var/vmm"
    vmm_vm_conf: "{{ lab_root }}/etc/vm.conf"
    vmm_host_dev_dir: "{{ lab_root }}/dev"
    vmm_boot_timeout: 120
    vmm_host_vm_conf: "{{ lab_root }}/etc/vm.conf"
    vmm_host_sysctl_conf: "{{ lab_root }}/etc/sysctl.conf"
    vmm_host_pf_conf: "{{ lab_root }}/etc/pf.conf"
    vmm_host_pf_anchor_file: "{{ lab_root }}/etc/pf.openbsd-vmm.conf"
    vmm_host_hostname_if_dir: "{{ lab_root }}/etc"
    vmm_host_doas_conf: "{{ lab_root }}/etc/doas.conf"
    vmm_host_login_conf: "{{ lab_root }}/etc/login.conf"
    install_server_chroot: "{{ lab_root }}/var/www"
    install_server_docroot: "{{ lab_root }}/var/www/htdocs"
    install_server_httpd_conf: "{{ lab_root }}/etc/httpd.conf"
    install_server_signify_key: "{{ lab_root }}/etc/signify/openbsd-78-base.pub"
    install_server_sets_url: "file://{{ lab_root }}/mirror/7.8/amd64"
    install_server_sets: [BUILDINFO, INSTALL.amd64, bsd, bsd.mp, bsd.rd, base78.tgz, comp78.tgz, man78.tgz]
    install_server_dhcpd: true
    install_server_dhcpd_conf: "{{ lab_root }}/etc/dhcpd.conf"
    install_server_dhcp_interfaces: [vport0]
    build_image_path: "{{ lab_root }}/var/vmm/golden.qcow2"
    build_image_docroot: "{{ lab_root }}/var/www/htdocs"
    build_image_file_group: www-data  # the lab's httpd serves as Debian's www-data (OpenBSD: www)
    build_image_root_ssh_key: "{{ lookup('ansible.builtin.file', lookup('ansible.builtin.env', 'VMM_LAB_BASE') ~ '/id_ed25519.pub') }}"
    build_image_install_timeout: 300
'''

GUEST_VARS = '''\
# How the controller reaches a lab guest: SSH as root with the key the golden image carries, through
# the lab's namespace of the guest's vmm host (a real fleet would use -o ProxyJump through the host,
# or route to the switch network). The guest's python3 is this machine's.
ansible_user: root
ansible_python_interpreter: /usr/bin/python3
ansible_ssh_private_key_file: "{{ lookup('ansible.builtin.env', 'VMM_LAB_BASE') }}/id_ed25519"
# SSH's control sockets in this run's own directory: another lab on this machine may give its guests
# the same addresses, and a shared ~/.ansible/cp would send this run's commands to them.
ansible_ssh_common_args: >-
  -o ProxyCommand="lab guest-connect --root {{ lookup('ansible.builtin.env', 'VMM_LAB_BASE') }}/{{ vmm_host }} %h %p"
  -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR
  -o ControlMaster=auto -o ControlPersist=60s -o ControlPath={{ lookup('ansible.builtin.env', 'VMM_LAB_BASE') }}/ssh-%C
guest_firstboot_domain: lab.example
# a user with the controller's key and a random password (delivered once in their authorized_keys)
guest_firstboot_users:
  - name: alice
    groups: [staff]
    authorized_keys: ["{{ lookup('ansible.builtin.file', lookup('ansible.builtin.env', 'VMM_LAB_BASE') ~ '/id_ed25519.pub') }}"]
    password: random
'''


def host_block(host, per_host, memory, tap_count):
    net = NETWORKS[host]
    lines = ['  %s:' % host, '    <<: *lab_host',
             '    vmm_host_memory: 16G',
             # vmd starts the guests the reload queued, 10 at a time, a second apart (vm.conf staggered start)
             '    vmm_host_staggered_parallel: 10',
             '    vmm_host_staggered_delay: 1',
             '    vmm_host_tap_count: %d' % tap_count,
             '    vmm_host_switches: [{name: uplink, interface: veb0, address: %s.1, address_interface: vport0}]' % net,
             '    install_server_dhcp_subnets: [{network: %s.0/24, routers: %s.1}]' % (net, net),
             '    vmm_guest_network: %s.0/24' % net,
             '    vmm_guest_network_reserved: 9',
             # ULA only (the lab allows fd00::/8): each switch guest gets a static address6 in this /64
             '    vmm_guest_network6: fd00:%s::/64' % net.replace('.', ':'),
             '    vmm_guests:']
    for index in range(1, per_host + 1):
        lines.append('      - {name: %sg%02d, memory: %s, switch: uplink}' % (host, index, memory))
    if not per_host:
        lines[-1] = '    vmm_guests: []'
    return lines


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('directory')
    parser.add_argument('per_host', type=int)
    parser.add_argument('--hosts', default='vmm1,vmm2')
    parser.add_argument('--memory', default='128M')
    parser.add_argument('--unplaced', type=int, default=0, help='guests without a host (placed by the plugin)')
    parser.add_argument('--extra', default='', help='JSON list of extra guest entries for the first host')
    args = parser.parse_args()
    hosts = args.hosts.split(',')
    tap_count = max(16, args.per_host + args.unplaced + 8)
    lines = ['# made by make_fleet.py: %d guests on each of %s' % (args.per_host, ', '.join(hosts)),
             'plugin: openbsd.vmm.vmm',
             # 3 octets of prefix leave 2^24 derived MACs; the default 4 (2^16) made 160 guests collide
             # (vmm1g43 and vmm1g77), which the plugin rightly refuses
             'lladdr_prefix: "fe:e1:ba"',
             'vmm_hosts:']
    first = True
    for host in hosts:
        block = host_block(host, args.per_host, args.memory, tap_count)
        if first:
            block[1] = '    <<: &lab_host\n' + '\n'.join('  ' + line for line in LAB_HOST.rstrip('\n').split('\n'))
            for entry in json.loads(args.extra or '[]'):
                if block[-1] == '    vmm_guests: []':
                    block[-1] = '    vmm_guests:'
                block.append('      - %s' % json.dumps(entry))
            first = False
        lines += block
    if args.unplaced:
        lines.append('guests:')
        for index in range(1, args.unplaced + 1):
            lines.append('  - {name: free%02d, memory: %s, switch: uplink}' % (index, args.memory))
    os.makedirs(os.path.join(args.directory, 'group_vars'), exist_ok=True)
    with open(os.path.join(args.directory, 'fleet.vmm.yml'), 'w', encoding='utf-8') as out:
        out.write('\n'.join(lines) + '\n')
    with open(os.path.join(args.directory, 'group_vars', 'vmm_guests.yml'), 'w', encoding='utf-8') as out:
        out.write('---\n' + GUEST_VARS)


if __name__ == '__main__':
    main()
