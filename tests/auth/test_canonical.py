"""canonical.py's HMAC-SHA256: FC's and ACS3's signatures are RFC 2104 HMACs, for any secret."""

from __future__ import annotations

import base64
import hashlib
import hmac

from hypothesis import given
from hypothesis import strategies as st

from fc_wsgi.auth.canonical import ACS3_ALGORITHM, acs3_signature, fc_signature

# Shorter than, exactly and longer than SHA-256's 64-byte block (a long key is hashed first).
SECRETS = st.binary(min_size=0, max_size=150) | st.sampled_from([b"k" * 64, b"k" * 65])


@given(secret=SECRETS, message=st.binary(max_size=300))
def test_fc_signature_is_base64_of_the_standard_hmac(secret, message):
    expected = hmac.new(secret, message, hashlib.sha256).digest()
    assert fc_signature(secret, message) == base64.b64encode(expected)


@given(secret=SECRETS, request=st.binary(max_size=300))
def test_acs3_signature_is_hex_of_the_standard_hmac(secret, request):
    string_to_sign = f"{ACS3_ALGORITHM}\n{hashlib.sha256(request).hexdigest()}".encode()
    expected = hmac.new(secret, string_to_sign, hashlib.sha256).hexdigest()
    assert acs3_signature(secret, request) == expected.encode()


def test_the_same_secret_signs_the_same_way_twice():
    # The padded states are cached and copied per call: a call never changes them.
    first = fc_signature(b"secret", b"one")
    fc_signature(b"secret", b"two")
    assert fc_signature(b"secret", b"one") == first
