# Signed models on the board: split off and check the Ed25519 signature block (docs/FORMAT.md, Signatures).
#
# A signed file is the unchanged .mpk (file_size bytes) + an 80-byte block: b"MPKS", u16 version 1,
# u16 size 80, 8-byte key id (first 8 bytes of the public key), 64-byte Ed25519 signature of
# file[0:file_size + 16]. The check runs in C (mpyml_engine.verify); the viper engine has no Ed25519.
import struct

MAGIC = b"MPKS"
BLOCK = 80
# the board-installed public key (`mpyml deploy --key KEY.pub`): the flash root, else the working directory
KEY_FILES = ("/mpyml_key.pub", "mpyml_key.pub")


def _hex(b):
    return "".join("%02x" % x for x in b)


def parse_key(data, where="key"):
    """32 raw public-key bytes from 32 raw bytes or 64 hex digits (bytes or str)."""
    if isinstance(data, str):
        data = data.encode()
    data = bytes(data)
    if len(data) != 32:
        t = data.strip()
        try:
            data = bytes(int(t[i:i + 2], 16) for i in range(0, 64, 2)) if len(t) == 64 else b""
        except ValueError:
            data = b""
    if len(data) != 32:
        raise ValueError("mpyml: %s is not an Ed25519 public key (32 bytes or 64 hex digits): give the KEY.pub "
                         "written by `mpyml keygen`" % where)
    return data


def _read(path):
    f = open(path, "rb")
    try:
        return f.read()
    finally:
        f.close()


def board_key():
    """(public key, path) of the board-installed key, or (None, None)."""
    for p in KEY_FILES:
        try:
            data = _read(p)
        except OSError:
            continue
        return parse_key(data, p), p
    return None, None


def block_at(buf):
    """Offset of the signature block (= the .mpk's file_size), or -1 for an unsigned file."""
    n = len(buf)
    if n < 64 + BLOCK:
        return -1
    fs = struct.unpack_from("<I", buf, 8)[0]
    if fs + BLOCK != n or bytes(buf[fs:fs + 4]) != MAGIC:
        return -1
    return fs


def _verifier():
    try:
        import mpyml_engine
    except ImportError:
        from mpyml import board_arch
        raise ValueError("mpyml: checking a model signature needs the native module mpyml_engine (C Ed25519), "
                         "not installed for arch %s (the viper engine cannot verify signatures): install it "
                         "with `mpyml deploy`" % board_arch()[0])
    v = getattr(mpyml_engine, "verify", None)
    if v is None:
        raise ValueError("mpyml: this mpyml_engine.mpy has no verify(): update it with `mpyml deploy`")
    return v


def check(buf, key=None):
    """The model buffer to load: buf itself (unsigned, no key required) or a memoryview of its .mpk part
    once the signature verified. key: 32 bytes / 64 hex digits / a .pub path; None: the board's key file."""
    at = block_at(buf)
    where = "key="
    if key is None:
        key, where = board_key()
    elif isinstance(key, str) and len(key.strip()) != 64:
        where = key
        try:
            key = _read(key)
        except OSError:
            raise ValueError("mpyml: key file %s not found: give the KEY.pub written by `mpyml keygen` (or "
                             "its 64 hex digits)" % where)
    if key is None:
        return buf if at < 0 else memoryview(buf)[:at]
    pub = parse_key(key, where)
    if at < 0:
        raise ValueError("mpyml: the model is not signed and a key is required (%s): sign it with "
                         "`mpyml pack --sign KEY`" % where)
    mv = memoryview(buf)
    ver, size = struct.unpack_from("<HH", buf, at + 4)
    if ver != 1 or size != BLOCK:
        raise ValueError("mpyml: signature block version %d is not supported: re-sign the model with this "
                         "mpyml" % ver)
    kid = bytes(mv[at + 8:at + 16])
    if kid != pub[:8]:
        raise ValueError("mpyml: the model was signed with another key (key id %s, the key in %s is %s): sign "
                         "it with the matching private key" % (_hex(kid), where, _hex(pub[:8])))
    if not _verifier()(pub, mv[:at + 16], mv[at + 16:at + BLOCK]):
        raise ValueError("mpyml: signature check failed: the model was modified after signing: copy the "
                         "signed file again or re-sign it")
    return mv[:at]
