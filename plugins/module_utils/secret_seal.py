# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# Simplified BSD License (see LICENSES/BSD-2-Clause.txt or https://opensource.org/licenses/BSD-2-Clause)
"""A secret the module hands back to its action plugin, sealed with a one-time key.

Module results are printed in clear by ``ANSIBLE_DEBUG=1`` (stdout of the module run)
and kept in callbacks' logs; the action plugin sends a random key in the payload file
(never in the module's arguments) and the module returns the secret encrypted with it:
HMAC-SHA256 in counter mode as key stream, and an HMAC tag over nonce and ciphertext.
Standard library only (target side).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os


class SealError(ValueError):
    """The sealed value is damaged or was sealed with another key."""


def _stream(key, nonce, length):
    blocks, counter = [], 0
    while sum(len(block) for block in blocks) < length:
        blocks.append(hmac.new(key, b'stream' + nonce + counter.to_bytes(8, 'big'), hashlib.sha256).digest())
        counter += 1
    return b''.join(blocks)[:length]


def _key(hex_key):
    key = bytes.fromhex(hex_key)
    if len(key) < 16:
        raise SealError('the seal key is too short')
    return key


def seal(hex_key, text):
    """``text`` encrypted and authenticated with ``hex_key``, as URL-safe base64."""
    key = _key(hex_key)
    data = text.encode('utf-8')
    nonce = os.urandom(16)
    cipher = bytes(a ^ b for a, b in zip(data, _stream(key, nonce, len(data))))
    tag = hmac.new(key, b'tag' + nonce + cipher, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(nonce + tag + cipher).decode('ascii')


def unseal(hex_key, sealed):
    """The text ``seal(hex_key, text)`` sealed; SealError if it was changed or sealed with another key."""
    key = _key(hex_key)
    try:
        raw = base64.urlsafe_b64decode(sealed.encode('ascii'))
    except (ValueError, AttributeError):
        raise SealError('the sealed value is not base64')
    nonce, tag, cipher = raw[:16], raw[16:48], raw[48:]
    if len(nonce) != 16 or not hmac.compare_digest(tag, hmac.new(key, b'tag' + nonce + cipher, hashlib.sha256).digest()):
        raise SealError('the sealed value does not verify with this key')
    return bytes(a ^ b for a, b in zip(cipher, _stream(key, nonce, len(cipher)))).decode('utf-8')
