"""Signed models: Ed25519 keys, signing on the host, verification on the host and on the board.

    mpyml keygen -o key                     key (private, PEM PKCS#8) + key.pub (public, 64 hex digits)
    mpyml pack model.tflite -o m.mpk --sign key
    mpyml deploy --port P m.mpk --key key.pub   # installs mpyml_key.pub: the board refuses unsigned models

A signed file is the unchanged .mpk (``file_size`` bytes, its CRC and layout untouched) followed by an
80-byte signature block (docs/FORMAT.md, "Signatures"):

    0   4   magic  b"MPKS"
    4   u16 version (1)
    6   u16 block size (80)
    8   8   key id: the first 8 bytes of the signer's public key
    16  64  Ed25519 signature (RFC 8032) of file[0 : file_size + 16] (the .mpk and the block header)

The board's C engine verifies it (``mpyml_engine.verify``, native_modules/engine/sign/ed25519_verify.c);
``verify_c`` runs the same C code through the host library, ``verify`` uses the ``cryptography`` package.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import struct
import sys
from pathlib import Path

MAGIC = b"MPKS"
VERSION = 1
BLOCK_SIZE = 80
HEADER_SIZE = 16           # the signed part of the block
_FILE_SIZE = struct.Struct("<I")  # .mpk header offset 8
BOARD_KEY_FILE = "mpyml_key.pub"  # in the board's root (working) directory


class SignError(ValueError):
    """A user-fixable signing problem (bad key file, unsigned model...): one line, names the fix."""


# ------------------------------------------------------------------------------ file layout
def _mpk_size(data: bytes) -> int:
    if len(data) < 64 or data[:4] != b"MPYM":
        raise SignError("not an mpyml model (.mpk): pack it with `mpyml pack` first")
    return int(_FILE_SIZE.unpack_from(data, 8)[0])


def split(data: bytes) -> tuple[bytes, bytes | None]:
    """(the .mpk bytes, the 80-byte signature block or None if the file is unsigned)."""
    n = _mpk_size(data) if data[:4] == b"MPYM" and len(data) >= 64 else len(data)
    if len(data) == n + BLOCK_SIZE and data[n:n + 4] == MAGIC:
        return data[:n], data[n:]
    return data, None


def key_id(pub: bytes) -> bytes:
    return pub[:8]


def sign_mpk(mpk: bytes, private_key: object) -> bytes:
    """The signed file: mpk (unsigned; a signed one is re-signed) + the signature block."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    if not isinstance(private_key, Ed25519PrivateKey):
        raise SignError("the signing key is not an Ed25519 private key: make one with `mpyml keygen -o KEY`")
    mpk, _ = split(mpk)
    if _mpk_size(mpk) != len(mpk):
        raise SignError(f"the .mpk says file_size {_mpk_size(mpk)} but has {len(mpk)} bytes: repack it")
    header = MAGIC + struct.pack("<HH", VERSION, BLOCK_SIZE) + key_id(public_bytes(private_key))
    return mpk + header + private_key.sign(mpk + header)


def signed_message(data: bytes) -> tuple[bytes, bytes, bytes]:
    """(message, key id, signature) of a signed file; SignError if it is not signed."""
    mpk, block = split(data)
    if block is None:
        raise SignError("the model is not signed: sign it with `mpyml pack --sign KEY`")
    version, size = struct.unpack_from("<HH", block, 4)
    if version != VERSION or size != BLOCK_SIZE:
        raise SignError(f"signature block version {version} (size {size}) is not supported: re-sign the model")
    return mpk + block[:HEADER_SIZE], block[8:16], block[16:]


def verify(data: bytes, pub: bytes) -> None:
    """Check a signed file against a public key with `cryptography`; SignError saying what is wrong."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    msg, kid, sig = signed_message(data)
    if kid != key_id(pub):
        raise SignError(f"the model was signed with another key (key id {kid.hex()}, this key is "
                        f"{key_id(pub).hex()})")
    try:
        Ed25519PublicKey.from_public_bytes(pub).verify(sig, msg)
    except InvalidSignature:
        raise SignError("signature check failed: the model was modified after signing") from None


def verify_c(pub: bytes, msg: bytes, sig: bytes) -> bool:
    """The engine's C verifier (mpyml_ed25519_verify) through the host library (`make hostlib`)."""
    from . import hostlib
    lib = hostlib.load_library().lib
    fn = lib.mpyml_ed25519_verify
    fn.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p]
    fn.restype = ctypes.c_int
    if len(pub) != 32 or len(sig) != 64:
        raise ValueError("verify_c: the public key must be 32 bytes and the signature 64")
    return bool(fn(bytes(pub), bytes(msg), len(msg), bytes(sig)))


def sha512_c(data: bytes) -> bytes:
    """SHA-512 by the engine's C code (the hash inside Ed25519), for tests."""
    from . import hostlib
    fn = hostlib.load_library().lib.mpyml_sha512
    fn.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p]
    fn.restype = None
    out = ctypes.create_string_buffer(64)
    fn(bytes(data), len(data), out)
    return out.raw


# ------------------------------------------------------------------------------ keys
def generate() -> object:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    return Ed25519PrivateKey.generate()


def public_bytes(private_key: object) -> bytes:
    from cryptography.hazmat.primitives import serialization as ser
    return private_key.public_key().public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw)  # type: ignore[attr-defined]


def private_pem(private_key: object) -> bytes:
    from cryptography.hazmat.primitives import serialization as ser
    return private_key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8,  # type: ignore[attr-defined]
                                     ser.NoEncryption())


def load_private(path: Path | str) -> object:
    """An Ed25519 private key from a PEM file (mpyml keygen) or a file of its 32 raw bytes."""
    from cryptography.hazmat.primitives import serialization as ser
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    data = Path(path).read_bytes()
    if b"-----BEGIN" in data:
        try:
            key = ser.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as e:
            raise SignError(f"{path}: not a readable unencrypted PEM private key ({e}): "
                            "make one with `mpyml keygen -o KEY`") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise SignError(f"{path}: a {type(key).__name__}, not an Ed25519 key: make one with `mpyml keygen`")
        return key
    if len(data) == 32 and not str(path).endswith(".pub"):
        return Ed25519PrivateKey.from_private_bytes(data)  # a raw 32-byte private key
    what = "a public key" if _raw32(data) is not None else "not a private key"
    raise SignError(f"{path}: {what}: sign with the private key file written by `mpyml keygen -o KEY` "
                    "(KEY, not KEY.pub)")


def _raw32(data: bytes) -> bytes | None:
    if len(data) == 32:
        return data
    text = data.strip()
    if len(text) == 64:
        try:
            return bytes.fromhex(text.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            return None
    return None


def load_public(path: Path | str) -> bytes:
    """32 raw public-key bytes from a .pub file (64 hex digits or 32 raw bytes)."""
    raw = _raw32(Path(path).read_bytes())
    if raw is None:
        raise SignError(f"{path}: not an Ed25519 public key (64 hex digits or 32 bytes): give the KEY.pub "
                        "written by `mpyml keygen -o KEY`")
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    try:
        Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        raise SignError(f"{path}: not a valid Ed25519 public key: regenerate it with `mpyml keygen`") from None
    return raw


def write_keypair(out: Path) -> tuple[Path, Path]:
    key = generate()
    pub = out.with_name(out.name + ".pub")
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private_pem(key))
    pub.write_text(public_bytes(key).hex() + "\n")
    return out, pub


# ------------------------------------------------------------------------------ CLI
def cmd_keygen(args: argparse.Namespace) -> int:
    out = Path(args.output)
    if out.exists() and not args.force:
        print(f"mpyml keygen: {out} exists: pass --force to overwrite it (the old key's models stop verifying)",
              file=sys.stderr)
        return 2
    priv, pub = write_keypair(out)
    print(f"wrote {priv} (private key, keep it secret) and {pub} (public key, key id "
          f"{bytes.fromhex(pub.read_text())[:8].hex()}): sign with `mpyml pack --sign {priv}`, "
          f"install with `mpyml deploy --key {pub}`")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    try:
        verify(Path(args.model).read_bytes(), load_public(args.key))
    except SignError as e:
        print(f"mpyml verify: {args.model}: {e}", file=sys.stderr)
        return 2
    print(f"{args.model}: signature OK (key id {load_public(args.key)[:8].hex()})")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("keygen", help="make an Ed25519 key pair for signed models (KEY and KEY.pub)")
    p.add_argument("-o", "--output", required=True, metavar="KEY", help="private key file; KEY.pub is the public key")
    p.add_argument("--force", action="store_true", help="overwrite an existing key")
    p.set_defaults(func=cmd_keygen)
    p = sub.add_parser("verify", help="check a signed .mpk against a public key")
    p.add_argument("model")
    p.add_argument("--key", required=True, metavar="KEY.pub")
    p.set_defaults(func=cmd_verify)


def board_key_item(pub_path: Path, files: list[tuple[str, bytes]]) -> tuple[str, bytes, str]:
    """`mpyml deploy --key`: (dest, data, description) of the board's key file, after checking that every
    .mpk being deployed is signed with that key (else the board would refuse it)."""
    pub = load_public(pub_path)
    for dest, data in files:
        if dest.endswith(".mpk"):
            try:
                verify(data, pub)
            except SignError as e:
                raise SignError(f"{dest}: {e} (the board would refuse it once {pub_path} is installed)") from None
    return BOARD_KEY_FILE, pub.hex().encode() + b"\n", f"public key {key_id(pub).hex()} (unsigned models refused)"
