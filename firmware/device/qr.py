"""QR codes (ISO/IEC 18004:2015) for a short link: byte mode, level L, versions 1 to 5.

Only what the 128x64 OLED can show: versions 1-5 have one Reed-Solomon block
at level L, one alignment pattern at most and no version information, so the
code stays small. All eight masks are scored with the penalty rules (7.8.3)
and the lowest wins. Imported only while a code is drawn, then freed.
"""

from micropython import const

# Version 1..5 at level L: (data codewords, error correction codewords), Table 9.
_BLOCKS = ((19, 7), (34, 10), (55, 15), (80, 20), (108, 26))
MAX_BYTES = const(106)  # version 5-L in byte mode: 108 codewords less the 12-bit header
_FORMAT_MASK = const(0x5412)  # 7.9.1
_FORMAT_POLY = const(0x537)
_LEVEL_L = const(1)  # the format's 2-bit error correction level


def capacity(version):
    """Bytes a version holds in byte mode at level L: 4-bit mode + 8-bit count + 8 per byte."""
    return (_BLOCKS[version - 1][0] * 8 - 12) // 8


def _codewords(data, version):
    """Data codewords (mode, count, bytes, terminator, pad) followed by their RS codewords."""
    dc, ec = _BLOCKS[version - 1]
    n = len(data)
    out = bytearray(dc + ec)
    out[0] = 0x40 | n >> 4  # mode 0100 (byte), then the 8-bit count straddles two codewords
    acc = n & 15
    for i in range(n):
        b = data[i]
        out[i + 1] = (acc << 4) | (b >> 4)
        acc = b & 15
    out[n + 1] = acc << 4  # the last nibble, then the terminator's zeros
    pad = 0xEC
    for i in range(n + 2, dc):
        out[i] = pad
        pad ^= 0xEC ^ 0x11  # 11101100 and 00010001 alternate (7.4.10)
    # Reed-Solomon over GF(256) with x^8+x^4+x^3+x^2+1 (7.5.2): exp/log tables, 768 bytes.
    exp = bytearray(512)
    log = bytearray(256)
    x = 1
    for i in range(255):
        exp[i] = exp[i + 255] = x
        log[x] = i
        x <<= 1
        if x & 0x100:
            x ^= 0x11D
    gen = bytearray(ec)  # the generator's coefficients below its leading 1, highest first
    gen[ec - 1] = 1
    root = 0  # log of alpha^i
    for _ in range(ec):
        for j in range(ec):
            g = gen[j]
            gen[j] = exp[log[g] + root] if g else 0
            if j + 1 < ec:
                gen[j] ^= gen[j + 1]
        root += 1
    rem = out[dc:]  # a zeroed view's copy, ec long
    for i in range(dc):
        factor = out[i] ^ rem[0]
        for j in range(ec - 1):
            rem[j] = rem[j + 1]
        rem[ec - 1] = 0
        if factor:
            lf = log[factor]
            for j in range(ec):
                if gen[j]:
                    rem[j] ^= exp[log[gen[j]] + lf]
    out[dc:] = rem
    return out


class QR:
    """The module matrix of one code: dark(x, y) is True for a dark module."""

    def __init__(self, data):
        n = len(data)
        version = 1
        while capacity(version) < n:
            version += 1
            if version > len(_BLOCKS):
                raise ValueError("%d bytes: a QR code here holds at most %d" % (n, MAX_BYTES))
        self.version = version
        size = self.size = 17 + 4 * version
        self.mod = bytearray(size * size)
        self.fn = bytearray(size * size)  # function patterns: never masked or filled with data
        self._patterns()
        self._place(_codewords(data, version))
        best = None
        for mask in range(8):
            self._mask(mask)
            self._format(mask)
            score = self._penalty()
            if best is None or score < best[0]:
                best = (score, mask)
            self._mask(mask)  # XOR again: undone
        self.mask = best[1]
        self._mask(self.mask)
        self._format(self.mask)
        self.fn = None

    def dark(self, x, y):
        return self.mod[y * self.size + x] == 1

    def _set(self, x, y, dark):
        i = y * self.size + x
        self.mod[i] = 1 if dark else 0
        self.fn[i] = 1

    def _patterns(self):
        size = self.size
        for i in range(size):  # timing patterns (6.3.5)
            self._set(6, i, i % 2 == 0)
            self._set(i, 6, i % 2 == 0)
        for cx, cy in ((3, 3), (size - 4, 3), (3, size - 4)):  # finders and separators (6.3.3)
            for dy in range(-4, 5):
                for dx in range(-4, 5):
                    x = cx + dx
                    y = cy + dy
                    if 0 <= x < size and 0 <= y < size:
                        d = max(abs(dx), abs(dy))
                        self._set(x, y, d != 2 and d != 4)
        if self.version > 1:  # the one alignment pattern of versions 2-6 (Annex E)
            c = size - 7
            for dy in range(-2, 3):
                for dx in range(-2, 3):
                    self._set(c + dx, c + dy, max(abs(dx), abs(dy)) != 1)
        self._format(0)  # reserve the format areas (and the dark module)

    def _format(self, mask):
        """Format information, BCH(15,5) and masked (7.9), in both copies."""
        data = _LEVEL_L << 3 | mask
        rem = data
        for _ in range(10):
            rem = (rem << 1) ^ ((rem >> 9) * _FORMAT_POLY)
        bits = (data << 10 | rem) ^ _FORMAT_MASK
        size = self.size
        for i in range(15):
            b = (bits >> i) & 1
            if i < 6:
                self._set(8, i, b)
            elif i < 8:
                self._set(8, i + 1, b)
            elif i == 8:
                self._set(7, 8, b)
            else:
                self._set(14 - i, 8, b)
            if i < 8:
                self._set(size - 1 - i, 8, b)
            else:
                self._set(8, size - 15 + i, b)
        self._set(8, size - 8, 1)  # the dark module

    def _place(self, codewords):
        """Data bits in two-module columns, zig-zagging up and down from the right (7.7.3)."""
        size = self.size
        mod = self.mod
        fn = self.fn
        total = len(codewords) * 8
        i = 0
        right = size - 1
        while right >= 1:
            if right == 6:
                right = 5  # skip the vertical timing pattern
            upward = ((right + 1) & 2) == 0
            for vert in range(size):
                y = size - 1 - vert if upward else vert
                for x in (right, right - 1):
                    k = y * size + x
                    if not fn[k] and i < total:
                        mod[k] = (codewords[i >> 3] >> (7 - (i & 7))) & 1
                        i += 1
            right -= 2

    def _mask(self, mask):
        size = self.size
        mod = self.mod
        fn = self.fn
        for y in range(size):
            for x in range(size):
                k = y * size + x
                if fn[k]:
                    continue
                if mask == 0:
                    flip = (x + y) % 2 == 0
                elif mask == 1:
                    flip = y % 2 == 0
                elif mask == 2:
                    flip = x % 3 == 0
                elif mask == 3:
                    flip = (x + y) % 3 == 0
                elif mask == 4:
                    flip = (x // 3 + y // 2) % 2 == 0
                elif mask == 5:
                    flip = x * y % 2 + x * y % 3 == 0
                elif mask == 6:
                    flip = (x * y % 2 + x * y % 3) % 2 == 0
                else:
                    flip = ((x + y) % 2 + x * y % 3) % 2 == 0
                if flip:
                    mod[k] ^= 1

    def _penalty(self):
        """The four penalty rules of 7.8.3 (N1 = 3, N2 = 3, N3 = 40, N4 = 10)."""
        size = self.size
        mod = self.mod
        score = 0
        dark = 0
        for line in range(size):
            for across in (True, False):
                run = 0
                prev = 2
                bits = 0  # the last 11 modules as bits, for the finder-like rule
                for i in range(size):
                    m = mod[line * size + i] if across else mod[i * size + line]
                    if m == prev:
                        run += 1
                        if run == 5:
                            score += 3
                        elif run > 5:
                            score += 1
                    else:
                        prev = m
                        run = 1
                    bits = ((bits << 1) | m) & 0x7FF
                    if i >= 10 and (bits == 0x5D0 or bits == 0x05D):
                        score += 40  # 1011101 0000 or 0000 1011101
        for y in range(size):
            for x in range(size):
                m = mod[y * size + x]
                dark += m
                if (
                    x < size - 1
                    and y < size - 1
                    and m == mod[y * size + x + 1]
                    and m == mod[(y + 1) * size + x]
                    and m == mod[(y + 1) * size + x + 1]
                ):
                    score += 3
        total = size * size
        k = (abs(dark * 20 - total * 10) + total - 1) // total - 1
        return score + k * 10
