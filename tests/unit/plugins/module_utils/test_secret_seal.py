# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Sealing what the module hands back to its action plugin."""

from __future__ import annotations

import base64
import os

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


# Worked out with openssl (HMAC-SHA256 of b'stream' + nonce + 8-byte big-endian counter, XOR, then the tag
# over b'tag' + nonce + ciphertext), not with secret_seal: a 16-byte key, a fixed nonce, 40 bytes of text
# so the key stream takes counters 0 and 1.
KEY_16 = '00112233445566778899aabbccddeeff'
NONCE = bytes(range(16))
TEXT_40 = 'sealed: 40 bytes, two blocks of stream!!'
SEALED_40 = ('AAECAwQFBgcICQoLDA0OD2_jQFMIn1ag9YJ8qEwX55WT0xyTOZgUm9ALyGBWnUAr'
             '8RMrd8wbu4Qj2inpoThR3-Byi7Fgl5Ml0WX0A7z1gPkz1cI040bN4w==')


def test_the_sealed_bytes_match_the_documented_construction(monkeypatch):
    monkeypatch.setattr(os, 'urandom', lambda size: NONCE[:size])
    assert seal(KEY_16, TEXT_40) == SEALED_40
    assert unseal(KEY_16, SEALED_40) == TEXT_40


def test_the_key_needs_16_bytes():
    assert unseal(KEY_16, seal(KEY_16, 'x')) == 'x'
    with pytest.raises(SealError, match='the seal key is too short'):
        seal(KEY_16[:30], 'x')
    with pytest.raises(SealError, match='the seal key is too short'):
        unseal(KEY_16[:30], SEALED_40)
