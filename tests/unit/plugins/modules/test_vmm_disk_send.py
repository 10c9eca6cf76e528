# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""vmm_disk_send as a module: main() with its options through the fake ssh of the module_utils tests (the send itself,
the rate limit and the takeover: tests/unit/plugins/module_utils/test_disk_send.py)."""

from __future__ import annotations

import hashlib
import os
import stat

from ansible_collections.openbsd.vmm.plugins.modules import vmm_disk_send
from ansible_collections.openbsd.vmm.tests.unit.plugins.modules.module_run import run_main
from ansible_collections.openbsd.vmm.tests.unit.plugins.module_utils.test_disk_send import PERCENTS, Peer


def test_a_send_through_main_with_the_defaults(tmp_path, monkeypatch, capsys):
    peer = Peer(tmp_path, monkeypatch)
    content = os.urandom(200000)
    with open(peer.src, 'wb') as handle:
        handle.write(content)
    result = run_main(vmm_disk_send, capsys, src=peer.src, dest=peer.dest, host='peer', progress=peer.progress, bwlimit='20M')
    assert result['changed'] is True and result['bytes'] == len(content) and result['sha256'] == hashlib.sha256(content).hexdigest()
    assert result['cmd'] == [peer.ssh, '-o', 'BatchMode=yes', '-p', '22', '-l', 'root', '--', 'peer',
                             'umask 077 && rm -f %s.send && exec cat > %s.send' % (peer.dest, peer.dest)]
    assert result['host'] == 'peer' and result['dest'] == peer.dest and result['stopped'] is None and isinstance(result['rate'], float)
    with open(peer.dest, 'rb') as handle:
        assert handle.read() == content
    assert stat.S_IMODE(os.stat(peer.dest).st_mode) == 0o600
    assert peer.lines()[1:-1] == PERCENTS and peer.lines()[-1].startswith('done %d bytes in ' % len(content))


def test_failures_through_main_name_the_cause(tmp_path, monkeypatch, capsys):
    peer = Peer(tmp_path, monkeypatch)
    with open(peer.src, 'wb') as handle:
        handle.write(b'disk')
    result = run_main(vmm_disk_send, capsys, src=peer.src, dest=peer.dest, host='peer\n', progress=peer.progress)
    assert result['failed'] is True and result['msg'].startswith("host: must be a host name") and result['msg'].endswith("(got 'peer\\n')")
    assert peer.lines()[-1] == 'failed: ' + result['msg']
    monkeypatch.setenv('FAKE_SSH_EXIT', '255')
    result = run_main(vmm_disk_send, capsys, src=peer.src, dest=peer.dest, host='peer', port=2022, progress=peer.progress)
    assert result['msg'] == 'ssh to root@peer port 2022 failed (exit 255): ssh: connect to host peer port 2022: Connection refused'
    monkeypatch.setenv('PATH', str(tmp_path / 'empty'))
    result = run_main(vmm_disk_send, capsys, src=peer.src, dest=peer.dest, host='peer', progress=peer.progress)
    assert result['failed'] is True and result['msg'] == 'ssh: no ssh command found on PATH'
    assert peer.lines()[-1] == 'failed: ssh: no ssh command found on PATH'
    assert os.listdir(os.path.dirname(peer.dest)) == []


def test_check_mode_through_main_sends_nothing(tmp_path, monkeypatch, capsys):
    peer = Peer(tmp_path, monkeypatch)
    with open(peer.src, 'wb') as handle:
        handle.write(b'disk')
    result = run_main(vmm_disk_send, capsys, check_mode=True, src=peer.src, dest=peer.dest, host='peer', progress=peer.progress,
                      ssh_options=['ConnectTimeout=5'], user='vmmsend')
    assert result['changed'] is True and result['bytes'] == 4 and 'sha256' not in result
    assert result['cmd'][:7] == [peer.ssh, '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=5', '-p', '22']
    # one ssh call, with the options given: the test that the peer's directory can be written
    assert [call['argv'][-1] for call in peer.calls()] == ['test -d {0} && test -w {0}'.format(os.path.dirname(peer.dest))]
    assert peer.calls()[0]['argv'][1:9] == ['-o', 'BatchMode=yes', '-o', 'ConnectTimeout=5', '-p', '22', '-l', 'vmmsend']
    assert not os.path.exists(peer.progress) and os.listdir(os.path.dirname(peer.dest)) == []
