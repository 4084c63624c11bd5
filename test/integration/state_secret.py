#!/usr/bin/python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""Try to open the run-time secret of a state file (docs/STATE.md) as an
attacker who has only that file would, and as the server does with
clients.conf too. Used by test-state-migration.sh.

  state_secret.py attack STATE NAME GPGHOME
      exit 0 if no passphrase derived from the state file alone decrypts
      NAME's encrypted_secret, 1 if one does (printing which).
  state_secret.py open STATE CLIENTS_CONF NAME GPGHOME SECKEY
      print NAME's run-time secret, decrypted with the passphrase derived
      from the configured secret (version 2), then with the client's
      OpenPGP key SECKEY, as mandos-client would: proves that the attack's
      gpg invocation works.
  state_secret.py digest-is-sha256 STATE CLIENTS_CONF NAME
      exit 0 if the state's digest of NAME's configured secret is its plain
      SHA-256 (what version 1 stored), 1 if not.
"""
import base64
import configparser
import hashlib
import hmac
import json
import os
import subprocess
import sys


def client(state, name):
    with open(state) as f:
        doc = json.load(f)
    for c in doc["clients"]:
        if c["name"] == name:
            return doc["version"], c
    sys.exit(f"no client {name} in {state}")


def configured_secret(conf, name):
    c = configparser.ConfigParser(interpolation=None)
    c.read(conf)
    return base64.b64decode(c[name]["secret"])


def decrypt(cipher, passphrase, home):
    path = os.path.join(home, "cipher.gpg")
    with open(path, "wb") as f:
        f.write(cipher)
    p = subprocess.run(["gpg", "--batch", "--quiet", "--homedir", home, "--no-permission-warning",
                        "--pinentry-mode", "loopback", "--passphrase-fd", "0", "--decrypt", path],
                       input=passphrase.encode() + b"\n", capture_output=True)
    return p.stdout if p.returncode == 0 else None


def candidates(c):
    """Passphrases computable from the state file alone."""
    values = set()
    for part in ("config", "runtime"):
        for k, v in c.get(part, {}).items():
            if isinstance(v, str) and len(v) == 64:
                values.add(v.lower())
    for v in values:
        for prefix in ("mandos-state-1:", "mandos-state-2:", ""):
            yield prefix + v


def main():
    cmd = sys.argv[1]
    if cmd == "attack":
        _, state, name, home = sys.argv[1:]
        _, c = client(state, name)
        cipher = base64.b64decode(c["encrypted_secret"])
        for p in candidates(c):
            if decrypt(cipher, p, home) is not None:
                print(f"decrypted with a passphrase from the state file alone: {p[:24]}...")
                sys.exit(1)
        sys.exit(0)
    if cmd == "open":
        _, state, conf, name, home, seckey = sys.argv[1:]
        _, c = client(state, name)
        secret = configured_secret(conf, name)
        mac = hmac.new(secret, b"mandos state: run-time secret passphrase", hashlib.sha256)
        inner = decrypt(base64.b64decode(c["encrypted_secret"]), "mandos-state-2:" + mac.hexdigest(), home)
        if inner is None:
            sys.exit("the configured secret does not open it")
        subprocess.run(["gpg", "--batch", "--quiet", "--homedir", home, "--import", seckey],
                       check=True, capture_output=True)
        path = os.path.join(home, "inner.gpg")
        with open(path, "wb") as f:
            f.write(inner)
        p = subprocess.run(["gpg", "--batch", "--quiet", "--homedir", home, "--decrypt", path],
                           capture_output=True)
        if p.returncode != 0:
            sys.exit("the client's key does not open what the state held: " + p.stderr.decode())
        sys.stdout.buffer.write(p.stdout)
        return
    if cmd == "digest-is-sha256":
        _, state, conf, name = sys.argv[1:]
        version, c = client(state, name)
        field = "secret_sha256" if version == 1 else "secret_digest"
        digest = c["config"][field]
        sys.exit(0 if digest == hashlib.sha256(configured_secret(conf, name)).hexdigest() else 1)
    sys.exit(__doc__)


if __name__ == "__main__":
    main()
