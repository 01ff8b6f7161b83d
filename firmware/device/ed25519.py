# ruff: noqa: UP031  (MicroPython code: % formatting is its cheapest)
"""Ed25519 signature verification (RFC 8032, section 5.1.7) in pure MicroPython.

Verify only: the device holds public keys (release key, command key), never a
private one, so a stolen device cannot sign anything. Ed25519 because its keys
are 32 bytes, its signatures 64, verification needs no random numbers, and the
whole check is a few hundred lines of big-int arithmetic (docs/firmware.md,
Signatures). Points are kept in extended coordinates (X, Y, Z, T), x = X/Z,
y = Y/Z, x*y = T/Z (Hisil, Wong, Carter, Dawson 2008), as RFC 8032 5.1.4 does.
"""

try:
    from hashlib import sha512
except ImportError:  # a port built without SHA-512: the pure one (slow but correct)
    from sha512 import sha512

# RFC 8032 5.1: p = 2^255 - 19, d = -121665/121666, L the group order, B the base point.
_P = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFED
_D = 0x52036CEE2B6FFE738CC740797779E89800700A4D4141D8AB75EB4DCA135978A3
_D2 = (2 * _D) % _P
_SQRT_M1 = 0x2B8324804FC1DF0B2B4D00993DFBD7A72F431806AD2FE478C4EE1B274A0EA0B0
_L = 0x1000000000000000000000000000000014DEF9DEA2F79CD65812631A5CF5D3ED
_BX = 0x216936D3CD6E53FEC0A4E231FDD6DC5C692CC7609525A7B2C9562D608F25D51A
_BY = 0x6666666666666666666666666666666666666666666666666666666666666658
_B = (_BX, _BY, 1, (_BX * _BY) % _P)
_ZERO = (0, 1, 1, 0)


class SignatureError(ValueError):
    """A signature, key or message that does not verify; str() says which check failed."""


def _add(p, q):
    # add-2008-hwcd-3 (a = -1): 8 multiplications, complete for Ed25519.
    x1, y1, z1, t1 = p
    x2, y2, z2, t2 = q
    a = (y1 - x1) * (y2 - x2) % _P
    b = (y1 + x1) * (y2 + x2) % _P
    c = t1 * _D2 * t2 % _P
    d = 2 * z1 * z2 % _P
    e = b - a
    f = d - c
    g = d + c
    h = b + a
    return e * f % _P, g * h % _P, f * g % _P, e * h % _P


def _double(p):
    # dbl-2008-hwcd (a = -1): 4 squarings, 4 multiplications.
    x1, y1, z1, _ = p
    a = x1 * x1 % _P
    b = y1 * y1 % _P
    c = 2 * z1 * z1 % _P
    h = a + b
    s = x1 + y1
    e = h - s * s % _P
    g = a - b
    f = c + g
    return e * f % _P, g * h % _P, f * g % _P, e * h % _P


def _decompress(s):
    """RFC 8032 5.1.3: 32 bytes -> point, or None when they encode no point."""
    y = int.from_bytes(s, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    if y >= _P:
        return None
    yy = y * y % _P
    u = (yy - 1) % _P
    v = (_D * yy + 1) % _P
    v3 = v * v % _P * v % _P
    x = u * v3 % _P * pow(u * v3 % _P * v3 % _P * v % _P, (_P - 5) // 8, _P) % _P
    vxx = v * x % _P * x % _P
    if vxx != u:
        if vxx != (_P - u) % _P:
            return None
        x = x * _SQRT_M1 % _P
    if x == 0 and sign:
        return None
    if x & 1 != sign:
        x = _P - x
    return x, y, 1, x * y % _P


def _compress(p):
    x, y, z, _ = p
    zi = pow(z, _P - 2, _P)
    x = x * zi % _P
    y = y * zi % _P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def _double_mult(s, k, a):
    """[s]B + [k]A by Straus-Shamir: one shared chain of 253 doublings."""
    ba = _add(_B, a)
    q = _ZERO
    for i in range(255, -1, -1):
        q = _double(q)
        bit_s = (s >> i) & 1
        bit_k = (k >> i) & 1
        if bit_s and bit_k:
            q = _add(q, ba)
        elif bit_s:
            q = _add(q, _B)
        elif bit_k:
            q = _add(q, a)
    return q


def check(public_key, message, signature):
    """Raise SignatureError unless `signature` (64 bytes) is public_key's over message."""
    if len(public_key) != 32:
        raise SignatureError("public key must be 32 bytes")
    if len(signature) != 64:
        raise SignatureError("signature must be 64 bytes")
    s = int.from_bytes(signature[32:], "little")
    if s >= _L:
        raise SignatureError("signature S out of range")  # 5.1.7 step 1: no malleability
    a = _decompress(public_key)
    if a is None:
        raise SignatureError("public key is not a curve point")
    h = sha512(signature[:32])
    h.update(public_key)
    h.update(message)
    k = int.from_bytes(h.digest(), "little") % _L
    # [S]B = R + [k]A  <=>  encode([S]B + [k](-A)) == R (the encoding is canonical).
    neg_a = ((_P - a[0]) % _P, a[1], a[2], (_P - a[3]) % _P)
    if _compress(_double_mult(s, k, neg_a)) != bytes(signature[:32]):
        raise SignatureError("signature does not match")


def verify(public_key, message, signature):
    """True when signature is public_key's Ed25519 signature over message."""
    try:
        check(public_key, message, signature)
    except SignatureError:
        return False
    return True
