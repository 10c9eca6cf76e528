# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Publishing in the docroot: the site set in the set directory and index.txt."""

from __future__ import annotations

import base64
import fcntl
import io
import json
import os
import stat
import subprocess
import tarfile
import threading

import pytest

from ansible_collections.openbsd.vmm.plugins.module_utils import autoinstall_publish, processes
from ansible_collections.openbsd.vmm.plugins.module_utils.autoinstall_publish import Publication, PublishError, update_index

MAC = 'fe:e1:bb:d1:00:01'
OTHER_INDEX_LINES = (
    '-rw-r--r--  1 0  0    12345678 Oct  1 12:00:00 2026 base78.tgz\n'
    '-rw-r--r--  1 0  0     4567890 Oct  1 12:00:00 2026 bsd.rd\n'
)


def site_file(path, text, mode='0644'):
    return dict(path=path, content=base64.b64encode(text.encode('utf-8')).decode('ascii'), mode=mode)


def members(data):
    with tarfile.open(fileobj=io.BytesIO(data), mode='r:gz') as tar:
        return dict((member.name, member) for member in tar.getmembers())


@pytest.fixture
def docroot(tmp_path):
    setdir = tmp_path / 'pub' / 'OpenBSD' / '7.8' / 'amd64'
    setdir.mkdir(parents=True)
    (setdir / 'index.txt').write_text(OTHER_INDEX_LINES)
    return tmp_path


def publication_for(docroot, site_set):
    params = dict(docroot=str(docroot), file_group=None, mac=MAC.upper(), release='7.8', arch='amd64')
    payload = dict(response_file='System hostname = web1\n', site_set=site_set,
                   site_files=[site_file('install.site', 'echo site\n', '0755')])
    return Publication(params, payload), payload


@pytest.mark.parametrize('site_set', ['site78.tgz', 'site78-web1.tgz'])
def test_publish_puts_the_site_set_in_the_set_directory_and_lists_it(docroot, site_set):
    publication, payload = publication_for(docroot, site_set)
    changed, paths, dummy = publication.publish(payload)
    setdir = docroot / 'pub' / 'OpenBSD' / '7.8' / 'amd64'
    site_path = setdir / site_set
    response_path = str(docroot / 'fe:e1:bb:d1:00:01-install.conf')
    assert changed == [response_path, str(site_path), str(setdir / 'index.txt')]
    assert paths == [response_path, str(site_path)]
    assert stat.S_IMODE(site_path.stat().st_mode) == 0o640
    assert './install.site' in members(site_path.read_bytes())
    index = (setdir / 'index.txt').read_text()
    assert index.startswith(OTHER_INDEX_LINES)
    assert [line.split()[-1] for line in index.splitlines()] == ['base78.tgz', 'bsd.rd', site_set]
    # The same inputs again: nothing to change.
    assert publication.publish(payload)[0] == []


def test_remove_drops_the_site_set_and_only_its_index_line(docroot):
    publication, payload = publication_for(docroot, 'site78-web1.tgz')
    publication.publish(payload)
    removed = publication.remove()
    setdir = docroot / 'pub' / 'OpenBSD' / '7.8' / 'amd64'
    assert str(setdir / 'site78-web1.tgz') in removed
    assert not (setdir / 'site78-web1.tgz').exists()
    assert (setdir / 'index.txt').read_text() == OTHER_INDEX_LINES


# -- index.txt --------------------------------------------------------------

def test_update_index_adds_an_entry_after_the_other_lines(docroot):
    setdir = docroot / 'pub' / 'OpenBSD' / '7.8' / 'amd64'
    (setdir / 'site78.tgz').write_bytes(b'x' * 1234)
    assert update_index(str(setdir), 'site78.tgz', True) is True
    lines = (setdir / 'index.txt').read_text().splitlines(True)
    assert ''.join(lines[:2]) == OTHER_INDEX_LINES
    assert lines[2].split()[-1] == 'site78.tgz' and lines[2].split()[4] == '1234'
    assert update_index(str(setdir), 'site78.tgz', True) is False
    assert len((setdir / 'index.txt').read_text().splitlines()) == 3


def test_update_index_removes_only_the_named_entry(docroot):
    setdir = docroot / 'pub' / 'OpenBSD' / '7.8' / 'amd64'
    assert update_index(str(setdir), 'bsd.rd', False) is True
    assert (setdir / 'index.txt').read_text() == OTHER_INDEX_LINES.splitlines(True)[0]
    assert update_index(str(setdir), 'bsd.rd', False) is False


def test_update_index_creates_a_missing_index(tmp_path):
    (tmp_path / 'site78.tgz').write_bytes(b'data')
    assert update_index(str(tmp_path), 'site78.tgz', True) is True
    assert (tmp_path / 'index.txt').read_text().split()[-1] == 'site78.tgz'


def test_update_index_waits_for_another_run_holding_the_set_directory(docroot):
    """Two installs of one release at once (build_image.yml's variants) take turns on index.txt."""
    setdir = docroot / 'pub' / 'OpenBSD' / '7.8' / 'amd64'
    (setdir / 'site78.tgz').write_bytes(b'data')
    holder = os.open(str(setdir), os.O_RDONLY)
    fcntl.flock(holder, fcntl.LOCK_EX)
    done = []
    worker = threading.Thread(target=lambda: done.append(update_index(str(setdir), 'site78.tgz', True)))
    worker.start()
    worker.join(0.5)
    try:
        assert done == [] and (setdir / 'index.txt').read_text() == OTHER_INDEX_LINES     # still waiting
    finally:
        os.close(holder)
    worker.join(10)
    assert done == [True] and (setdir / 'index.txt').read_text().splitlines()[-1].split()[-1] == 'site78.tgz'
    other = os.open(str(setdir), os.O_RDONLY)
    try:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)     # released once it is done
    finally:
        os.close(other)


def test_update_index_wants_a_directory(tmp_path):
    (tmp_path / 'file').write_text('')
    with pytest.raises(NotADirectoryError):
        update_index(str(tmp_path / 'file'), 'site78.tgz', True)


# -- who may read what is published -----------------------------------------

def test_secret_files_are_0640_for_the_file_group_and_the_template_is_public(docroot):
    gid = os.getgid()
    params = dict(docroot=str(docroot), file_group=str(gid), mac=MAC, release='7.8', arch='amd64')
    payload = dict(response_file='System hostname = web1\n', disklabel='/ 1G-*\n', site_set='site78-web1.tgz',
                   site_files=[site_file('install.site', 'echo site\n', '0755')])
    publication = Publication(params, payload)
    publication.publish(payload)
    modes = dict((os.path.basename(path), (stat.S_IMODE(os.stat(path).st_mode), os.stat(path).st_gid))
                 for path in (publication.response_path, publication.disklabel_path, publication.site_path))
    assert modes == {'%s-install.conf' % MAC: (0o640, gid), '%s-disklabel' % MAC: (0o644, gid),
                     'site78-web1.tgz': (0o640, gid)}


def test_a_missing_file_group_is_an_error_naming_the_option(docroot):
    params = dict(docroot=str(docroot), file_group='no-such-group-here', mac=MAC, release='7.8', arch='amd64')
    payload = dict(response_file='System hostname = web1\n')
    publication = Publication(params, payload)
    with pytest.raises(PublishError, match=r"file_group 'no-such-group-here': no such group on the install server"):
        publication.publish(payload)
    assert os.listdir(str(docroot)) == ['pub']
    # Removing needs no group.
    assert publication.remove() == []


def test_the_default_file_group_is_www():
    from ansible_collections.openbsd.vmm.plugins.module_utils.autoinstall_spec import ARGUMENT_SPEC
    assert ARGUMENT_SPEC['file_group']['default'] == 'www'


def test_the_diff_masks_the_values_of_answers(docroot):
    """Issue 10, point 12: answers may be passphrases; --diff shows their keys, never their values."""
    params = dict(docroot=str(docroot), file_group=None, mac=MAC, release='7.8', arch='amd64')
    payload = dict(response_file='Terminal type = vt100-secret\nSystem hostname = web1\n',
                   secret_answer_keys=['Terminal type'])
    dummy, dummy, diff = Publication(params, payload).publish(payload)
    assert 'vt100-secret' not in diff[0]['after']
    assert 'Terminal type = ********\n' in diff[0]['after'] and 'System hostname = web1' in diff[0]['after']
    payload = dict(payload, response_file='Terminal type = vt220-secret\nSystem hostname = web1\n')
    dummy, dummy, diff = Publication(params, payload).publish(payload)
    assert 'vt100-secret' not in diff[0]['before'] and 'vt220-secret' not in diff[0]['after']


def dead_pid():
    """The pid of a process that has ended (a killed run)."""
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


def test_a_killed_runs_files_are_removed_by_the_next_run(docroot, monkeypatch):
    """Issue 10, point 9: an install killed with -9 cannot remove what it published; any later run does."""
    publication, payload = publication_for(docroot, 'site78-web1.tgz')
    pid = dead_pid()
    monkeypatch.setattr(os, 'getpid', lambda: pid)
    publication.claim()
    publication.publish(payload)
    monkeypatch.undo()
    setdir = os.path.join(str(docroot), 'pub', 'OpenBSD', '7.8', 'amd64')
    assert os.path.exists(publication.response_path) and 'site78-web1.tgz' in open(os.path.join(setdir, 'index.txt')).read()
    record_dir = autoinstall_publish.records_dir(str(docroot))
    assert stat.S_IMODE(os.stat(record_dir).st_mode) == 0o700
    record = os.path.join(record_dir, 'fe:e1:bb:d1:00:01.json')
    assert stat.S_IMODE(os.stat(record).st_mode) == 0o600
    assert open(record).read() == (
        '{"client": null, "paths": ["%s/fe:e1:bb:d1:00:01-install.conf", "%s/fe:e1:bb:d1:00:01-disklabel", '
        '"%s/site78-web1.tgz"], "pid": %d, "setdir": "%s", "site_set": "site78-web1.tgz"}\n'
        % (docroot, docroot, setdir, pid, setdir))
    # check mode reports, changes nothing
    assert autoinstall_publish.remove_stale(str(docroot), check_mode=True) == [publication.response_path, publication.site_path]
    assert os.path.exists(publication.site_path)
    removed = autoinstall_publish.remove_stale(str(docroot))
    assert removed == [publication.response_path, publication.site_path]
    assert not os.path.exists(publication.response_path) and not os.path.exists(publication.site_path)
    assert open(os.path.join(setdir, 'index.txt')).read() == OTHER_INDEX_LINES
    assert os.listdir(record_dir) == []
    assert autoinstall_publish.remove_stale(str(docroot)) == []


def test_a_running_installs_files_are_kept(docroot):
    publication, payload = publication_for(docroot, None)
    publication.claim()  # this process: alive
    publication.publish(payload)
    assert autoinstall_publish.remove_stale(str(docroot)) == []
    assert os.path.exists(publication.response_path)
    publication.remove()
    publication.release()
    assert os.listdir(autoinstall_publish.records_dir(str(docroot))) == []


def test_a_record_never_removes_files_outside_the_docroot(docroot, tmp_path_factory):
    outside = tmp_path_factory.mktemp('elsewhere') / 'precious'
    outside.write_text('keep')
    directory = autoinstall_publish.records_dir(str(docroot))
    os.mkdir(directory)
    with open(os.path.join(directory, 'x.json'), 'w') as handle:
        handle.write('{"pid": %d, "paths": ["%s", "%s/../x"]}' % (dead_pid(), outside, docroot))
    assert autoinstall_publish.remove_stale(str(docroot)) == []
    assert outside.read_text() == 'keep'


# -- what a publication leaves, and when a record is stale -------------------

def test_mask_answers_without_keys_returns_the_text_as_it_is():
    text = 'Terminal type = vt100\n# a comment = x\n'
    assert autoinstall_publish.mask_answers(text, None) == text
    assert autoinstall_publish.mask_answers(text, []) == text
    assert autoinstall_publish.mask_answers(text, [' TERMINAL TYPE ']) == 'Terminal type = ********\n# a comment = x\n'


@pytest.fixture
def sleeper():
    process = subprocess.Popen(['sleep', '60'])
    yield process
    process.kill()
    process.wait()


def test_process_alive_probes_with_signal_0_only(sleeper):
    assert processes.process_alive(sleeper.pid) is True
    with pytest.raises(subprocess.TimeoutExpired):   # a real signal (SIGHUP) would end sleep(1)
        sleeper.wait(timeout=0.5)
    assert processes.process_alive(dead_pid()) is False


def test_a_process_of_another_user_counts_as_alive(monkeypatch):
    def refused(pid, sig):
        raise PermissionError(1, 'Operation not permitted')
    monkeypatch.setattr(os, 'kill', refused)
    assert processes.process_alive(4242) is True


def write_record(docroot, name, **record):
    directory = autoinstall_publish.records_dir(str(docroot))
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, name), 'w') as handle:
        json.dump(record, handle)
    return os.path.join(directory, name)


def test_no_records_directory_means_nothing_stale(docroot):
    assert autoinstall_publish.remove_stale(str(docroot)) == []
    assert not os.path.exists(autoinstall_publish.records_dir(str(docroot)))


def test_a_live_process_of_another_run_keeps_its_files(docroot, sleeper):
    published = docroot / 'fe:e1:bb:d1:00:02-install.conf'
    published.write_text('System hostname = web2\n')
    record = write_record(docroot, 'fe:e1:bb:d1:00:02.json', pid=sleeper.pid, paths=[str(published)])
    assert autoinstall_publish.remove_stale(str(docroot)) == []
    assert published.exists() and os.path.exists(record)


def test_other_files_in_the_records_directory_are_left_alone(docroot):
    notes = write_record(docroot, 'notes.txt', pid=dead_pid(), paths=[])
    assert autoinstall_publish.remove_stale(str(docroot)) == []
    assert os.path.exists(notes)


def test_the_pf_client_of_a_stale_record_is_deleted_before_the_record(docroot):
    calls = []
    with_client = write_record(docroot, 'a.json', pid=dead_pid(), paths=[], client=['vmm', 'installing', '10.0.0.5'])
    without = write_record(docroot, 'b.json', pid=dead_pid(), paths=[])
    assert autoinstall_publish.remove_stale(str(docroot), delete_client=calls.append) == []
    assert calls == [['vmm', 'installing', '10.0.0.5']]
    assert not os.path.exists(with_client) and not os.path.exists(without)


def test_a_record_whose_client_cannot_be_deleted_stays_for_the_next_run(docroot):
    def fails(client):
        raise OSError('pfctl: Operation not permitted')
    record = write_record(docroot, 'a.json', pid=dead_pid(), paths=[], client=['vmm', 'installing', '10.0.0.5'])
    assert autoinstall_publish.remove_stale(str(docroot), delete_client=fails) == []
    assert os.path.exists(record)
    # without a way to delete the client, the record goes
    assert autoinstall_publish.remove_stale(str(docroot)) == []
    assert not os.path.exists(record)


def test_existing_reads_the_site_set_only_when_there_is_one(docroot):
    publication, payload = publication_for(docroot, None)
    assert publication.existing() == {'response_file': None}
    publication.publish(payload)
    assert publication.existing() == {'response_file': 'System hostname = web1\n'}
    hashed = '$2b$10$' + 'A' * 53
    publication, payload = publication_for(docroot, 'site78-web1.tgz')
    payload['site_files'] = [site_file('install.site', "useradd -m -p '%s' joe\n" % hashed, '0755')]
    publication.publish(payload)
    assert publication.existing() == {'response_file': 'System hostname = web1\n', 'site_root_password': None,
                                      'site_user_hashes': {'joe': hashed}}


def test_publish_refuses_a_missing_set_directory_or_docroot(tmp_path):
    publication, payload = publication_for(tmp_path, 'site78.tgz')
    with pytest.raises(PublishError) as caught:
        publication.publish(payload)
    assert str(caught.value) == ('set directory %s/pub/OpenBSD/7.8/amd64 does not exist: put the release (bsd.rd, sets, '
                                 'SHA256.sig, index.txt) there first' % tmp_path)
    publication, payload = publication_for(tmp_path / 'gone', None)
    with pytest.raises(PublishError) as caught:
        publication.publish(payload)
    assert str(caught.value) == 'docroot %s/gone does not exist' % tmp_path
    assert os.listdir(str(tmp_path)) == []
