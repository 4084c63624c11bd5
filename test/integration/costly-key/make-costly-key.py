#!/usr/bin/python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""Make a TEST-ONLY RSA key that is costly to verify with.

    make-costly-key.py BITS OUTDIR [PFILE QFILE]

A valid RSA key (n = p*q, d*e = 1 mod lcm(p-1, q-1)) whose *private*
exponent d is small (64 bits) and whose *public* exponent e is therefore
about as large as the modulus: every signature check with it is a modular
exponentiation with a BITS-bit exponent instead of 17 bits (e = 65537).
Such a key is insecure by construction (Wiener's attack recovers d): it
exists only to load the server in test-hostile-costly-keys.sh.

Writes OUTDIR/costly-rsa-BITS.pub.pem (SubjectPublicKeyInfo, what the peer
presents as its raw public key) and OUTDIR/costly-rsa-BITS.key.pem (PKCS#1);
and OUTDIR/dearest-rsa-BITS.pub.pem, the same modulus with the largest
public exponent the server accepts (the largest prime below 2^32 that is
coprime to lcm(p-1, q-1)): the dearest key it still checks.
The primes come from `openssl prime -generate` (for 8192-bit primes that
takes a few minutes; PFILE and QFILE may hold its output from an earlier
run): made once and committed, never at test time.
"""
import base64
import math
import os
import secrets
import subprocess
import sys


def prime(bits):
    out = subprocess.run(["openssl", "prime", "-generate", "-bits", str(bits)],
                         check=True, capture_output=True, text=True).stdout
    return int(out.strip())


def der_len(n):
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def der(tag, body):
    return bytes([tag]) + der_len(len(body)) + body


def der_int(v):
    b = v.to_bytes(v.bit_length() // 8 + 1, "big")  # a leading 0 keeps it positive
    return der(0x02, b)


def der_seq(*items):
    return der(0x30, b"".join(items))


def pem(label, data):
    b64 = base64.encodebytes(data).decode().replace("\n", "")
    lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
    return "-----BEGIN %s-----\n%s\n-----END %s-----\n" % (label, "\n".join(lines), label)


def spki(n, e):
    rsa_public = der_seq(der_int(n), der_int(e))
    rsa_encryption = der_seq(der(0x06, bytes.fromhex("2a864886f70d010101")), der(0x05, b""))
    return der_seq(rsa_encryption, der(0x03, b"\x00" + rsa_public))


def is_prime(v):
    return v > 1 and all(v % k for k in range(2, math.isqrt(v) + 1))


def main():
    bits, outdir = int(sys.argv[1]), sys.argv[2]
    given = [int(open(f).read().strip()) for f in sys.argv[3:5]]
    while True:
        p, q = given or (prime(bits // 2), prime(bits // 2))
        given = None
        n = p * q
        if p != q and n.bit_length() == bits:
            break
    lam = (p - 1) * (q - 1) // math.gcd(p - 1, q - 1)
    while True:
        d = secrets.randbits(64) | (1 << 63) | 1
        if math.gcd(d, lam) == 1:
            e = pow(d, -1, lam)
            if e.bit_length() > bits - 8:
                break
    assert (e * d) % lam == 1
    dear = (1 << 32) - 1
    while not (is_prime(dear) and math.gcd(dear, lam) == 1):
        dear -= 2
    private = der_seq(der_int(0), der_int(n), der_int(e), der_int(d), der_int(p), der_int(q),
                      der_int(d % (p - 1)), der_int(d % (q - 1)), der_int(pow(q, -1, p)))
    name = os.path.join(outdir, "costly-rsa-%d" % bits)
    with open(name + ".pub.pem", "w") as f:
        f.write(pem("PUBLIC KEY", spki(n, e)))
    with open(os.path.join(outdir, "dearest-rsa-%d.pub.pem" % bits), "w") as f:
        f.write(pem("PUBLIC KEY", spki(n, dear)))
    with open(name + ".key.pem", "w") as f:
        f.write(pem("RSA PRIVATE KEY", private))
    print("%s: n %d bits, e %d bits, d %d bits; dearest accepted e = %d" %
          (name, n.bit_length(), e.bit_length(), d.bit_length(), dear))


if __name__ == "__main__":
    main()
