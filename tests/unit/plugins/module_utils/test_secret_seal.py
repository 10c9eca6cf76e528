# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Sealing what the module hands back to its action plugin."""

from __future__ import annotations

import base64

import pytest

from ansible_collections.openbsd.vmm.plugins.module_utils.secret_seal import SealError, seal, unseal

KEY = '5e' * 32


def test_a_sealed_text_reads_back_with_its_key_only():
    sealed = seal(KEY, '{"site_root_password": "Plain-Passw0rd"}')
    assert 'Plain-Passw0rd' not in sealed and 'Plain-Passw0rd'.encode() not in base64.urlsafe_b64decode(sealed)
    assert unseal(KEY, sealed) == '{"site_root_password": "Plain-Passw0rd"}'
    assert seal(KEY, 'x') != seal(KEY, 'x')  # a fresh nonce each time
    with pytest.raises(SealError, match='does not verify'):
        unseal('a1' * 32, sealed)


def test_a_changed_or_garbled_value_is_refused():
    raw = bytearray(base64.urlsafe_b64decode(seal(KEY, 'secret text')))
    raw[-1] ^= 1
    with pytest.raises(SealError, match='does not verify'):
        unseal(KEY, base64.urlsafe_b64encode(bytes(raw)).decode())
    with pytest.raises(SealError):
        unseal(KEY, 'not base64!')
    with pytest.raises(SealError, match='too short'):
        seal('ab', 'x')
