"""Signed models (GitHub issue 13, item 7): the C Ed25519 verifier (RFC 8032 vectors, host library), keygen /
pack --sign / verify on the CLI, mpyml.load(key=...) and the board key file on the unix port, deploy --key on
the virtual board, bare-metal M0/M4 under QEMU. About 20 s on an idle machine (virtual board 8 s, QEMU 4 s)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from conftest import load_hostrun, skip_or_fail
from mpyml import pack, paths
from mpyml import sign as sg

if TYPE_CHECKING:
    from virtual_board import VirtualBoard

pytest_plugins = ["virtual_board"]

# RFC 8032 section 7.1: (secret, public, message, signature)
RFC8032 = [
    ("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46b"
     "d25bf5f0595bbe24655141438e7a100b"),
    ("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c"
     "387b2eaeb4302aeeb00d291612bb0c00"),
    ("c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
     "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc659"
     "4a7c15e9716ed28dc027beceea1ec40a"),
    ("833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42",
     "ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
     "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd"
     "454d4423643ce80e2a9ac94fa54ca49f",
     "dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b58909351fc9ac90b3ecfdfbc7c66431e030"
     "3dca179c138ac17ad9bef1177331a704"),
]
L = 2**252 + 27742317777372353535851937790883648493


@pytest.fixture(scope="module")
def hostlib_ok() -> None:
    if not paths.HOSTLIB.exists():
        pytest.fail(f"{paths.HOSTLIB} missing: run `make hostlib` (make test does)")


def _tiny_tflite(seed: int = 0) -> bytes:
    sys.path.insert(0, str(Path(__file__).parent))
    import tflite_build as tb
    return tb.fully_connected_model(np.random.default_rng(seed), in_shape=(1, 64), units=16)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("sign")
    key, pub = sg.write_keypair(d / "key")
    _, other = sg.write_keypair(d / "other")
    mpk = pack(_tiny_tflite())
    (d / "m.mpk").write_bytes(mpk)
    (d / "signed.mpk").write_bytes(sg.sign_mpk(mpk, sg.load_private(key)))
    return {"dir": d, "key": key, "pub": pub, "other_pub": other, "unsigned": d / "m.mpk",
            "signed": d / "signed.mpk"}


# ------------------------------------------------------------------------------ the C verifier
def test_rfc8032_vectors_c_and_cryptography(hostlib_ok: None) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    for secret, public, msg, sig in RFC8032:
        k = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(secret))
        pub, m, s = bytes.fromhex(public), bytes.fromhex(msg), bytes.fromhex(sig)
        assert sg.public_bytes(k) == pub and k.sign(m) == s  # the vectors as transcribed are the RFC's
        assert sg.verify_c(pub, m, s)
        for i in range(0, 64, 7):
            bad = bytearray(s)
            bad[i] ^= 0x10
            assert not sg.verify_c(pub, m, bytes(bad)), i
        assert not sg.verify_c(pub, m + b"x", s)
        wrong = bytearray(pub)
        wrong[0] ^= 1
        assert not sg.verify_c(bytes(wrong), m, s)
        # S + L verifies mathematically; RFC 8032 requires rejecting S >= L (malleability)
        s_plus_l = (int.from_bytes(s[32:], "little") + L).to_bytes(32, "little")
        assert not sg.verify_c(pub, m, s[:32] + s_plus_l)


def test_c_verifier_matches_cryptography(hostlib_ok: None) -> None:
    rng = np.random.default_rng(1)
    for n in (0, 1, 111, 112, 127, 128, 129, 255, 256, 1000, 65537):
        m = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        assert sg.sha512_c(m) == hashlib.sha512(m).digest(), n
        k = sg.generate()
        s = k.sign(m)  # type: ignore[attr-defined]
        assert sg.verify_c(sg.public_bytes(k), m, s), n
        assert not sg.verify_c(sg.public_bytes(sg.generate()), m, s), n
    # an encoding that is not a curve point is refused, not crashed on
    k = sg.generate()
    s = k.sign(b"abc")  # type: ignore[attr-defined]
    not_a_point = bytes.fromhex("02" + "00" * 31)
    assert not sg.verify_c(not_a_point, b"abc", s)


# ------------------------------------------------------------------------------ host side
def test_sign_layout_and_host_verify(files: dict[str, Path]) -> None:
    signed, mpk = files["signed"].read_bytes(), files["unsigned"].read_bytes()
    assert signed[:len(mpk)] == mpk and len(signed) == len(mpk) + sg.BLOCK_SIZE  # the .mpk is unchanged
    assert sg.split(signed) == (mpk, signed[len(mpk):]) and sg.split(mpk) == (mpk, None)
    pub = sg.load_public(files["pub"])
    sg.verify(signed, pub)
    msg, kid, sig = sg.signed_message(signed)
    assert kid == pub[:8] and sg.verify_c(pub, msg, sig)
    with pytest.raises(sg.SignError, match="another key"):
        sg.verify(signed, sg.load_public(files["other_pub"]))
    with pytest.raises(sg.SignError, match="not signed"):
        sg.verify(mpk, pub)
    bad = bytearray(signed)
    bad[200] ^= 1
    with pytest.raises(sg.SignError, match="modified after signing"):
        sg.verify(bytes(bad), pub)
    # re-signing replaces the block instead of stacking a second one
    again = sg.sign_mpk(signed, sg.load_private(files["key"]))
    assert len(again) == len(signed) and again[:len(mpk)] == mpk


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(paths.REPO / ".venv" / "bin" / "mpyml"), *args], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


def test_cli_keygen_pack_sign_verify(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    from mpyml import cli
    (tmp_path / "fc.tflite").write_bytes(_tiny_tflite(2))
    r = _cli("keygen", "-o", "k", cwd=tmp_path)                 # the installed console script
    assert r.returncode == 0 and "k.pub" in r.stdout, r.stderr
    assert (tmp_path / "k").read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert (tmp_path / "k").stat().st_mode & 0o077 == 0
    assert len(bytes.fromhex((tmp_path / "k.pub").read_text())) == 32
    monkeypatch.chdir(tmp_path)

    def run(*args: str) -> tuple[int, str, str]:
        rc = cli.main(list(args))
        out, err = capsys.readouterr()
        return rc, out, err

    rc, _, err = run("keygen", "-o", "k")
    assert rc == 2 and "--force" in err
    rc, _, err = run("pack", "fc.tflite", "-o", "fc.mpk", "--sign", "k")
    assert rc == 0, err
    assert run("verify", "fc.mpk", "--key", "k.pub")[0] == 0
    sg.verify((tmp_path / "fc.mpk").read_bytes(), sg.load_public(tmp_path / "k.pub"))
    for bad_key, words in (("k.pub", "a public key"), ("fc.tflite", "not a private key"), ("nope", "no such file")):
        rc, _, err = run("pack", "fc.tflite", "-o", "x.mpk", "--sign", bad_key)
        assert rc == 2 and words in err and len(err.strip().splitlines()) == 1, (bad_key, err)
        assert not (tmp_path / "x.mpk").exists()
    assert run("pack", "fc.tflite", "-o", "u.mpk")[0] == 0
    rc, _, err = run("verify", "u.mpk", "--key", "k.pub")
    assert rc == 2 and "not signed" in err
    rc, out, err = run("inspect", "fc.mpk")                    # other commands read the .mpk part of a signed file
    assert rc == 0 and "FULLY_CONNECTED" in out, err


# ------------------------------------------------------------------------------ on the unix port
def _device_args(files: dict[str, Path], tmp: Path) -> dict:
    from mpyml.unix_port import run_model
    mpk = files["unsigned"].read_bytes()
    from mpyml.mpk import MpkFile
    t = MpkFile(mpk).input_tensors()[0]
    expect = b"".join(o.tobytes() for o in run_model(mpk, [np.zeros(t.shape, t.np_dtype)]).outputs)
    k = sg.generate()
    big = os.urandom(250 * 1024)
    (tmp / "big.bin").write_bytes(big)
    (tmp / "big.sig").write_bytes(k.sign(big))  # type: ignore[attr-defined]
    (tmp / "big.pub").write_bytes(sg.public_bytes(k))
    return {"signed": str(files["signed"]), "unsigned": str(files["unsigned"]), "pub": str(files["pub"]),
            "other_pub": str(files["other_pub"]), "expect_hex": expect.hex(), "big_msg": str(tmp / "big.bin"),
            "big_sig": str(tmp / "big.sig"), "big_pub": str(tmp / "big.pub")}


def test_device_load_with_key(files: dict[str, Path], tmp_path: Path, natmod_x64: Path) -> None:
    hr = load_hostrun()
    if not hr.natmod_has("verify"):
        pytest.fail(f"{natmod_x64} has no verify(): rebuild it with `make natmods`")
    run = hr.run_device("mp_sign.py", _device_args(files, tmp_path), cwd=tmp_path, timeout=120)
    assert len(run.passed) == 9, run.stdout
    assert run.values["bytes_checked"] == len(files["signed"].read_bytes())
    us = run.values["verify_250k_us"]
    print(f"\nEd25519 verify of a 250 KiB model, MicroPython unix port x64 natmod: {us} us")
    assert 0 < us < 200_000


def test_device_without_native_module(files: dict[str, Path], tmp_path: Path) -> None:
    run = load_hostrun().run_device("mp_sign_noengine.py", {k: str(files[k]) for k in ("signed", "unsigned", "pub")},
                                    natmod=False, cwd=tmp_path)
    assert run.passed == ["test_needs_native_module"], run.stdout


# ------------------------------------------------------------------------------ deploy --key
def test_deploy_key_on_virtual_board(virtual_board: VirtualBoard, files: dict[str, Path], natmod_x64: Path) -> None:
    b = virtual_board
    # an unsigned model with --key is refused before anything is copied
    r = b.deploy(str(files["unsigned"]), "--key", str(files["pub"]))
    assert r.returncode == 2 and "not signed" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (b.dir / "mpyml_key.pub").exists()
    r = b.deploy(str(files["signed"]), "--key", str(files["pub"]))
    assert r.returncode == 0, r.stdout + r.stderr
    assert sg.load_public(b.dir / "mpyml_key.pub") == sg.load_public(files["pub"])
    assert "loaded" in b.exec("import mpyml\nm = mpyml.load('models/signed.mpk')\nprint('loaded')")
    (b.dir / "models" / "plain.mpk").write_bytes(files["unsigned"].read_bytes())
    out = b.exec("import mpyml\ntry:\n    mpyml.load('models/plain.mpk')\nexcept ValueError as e:\n    print(e)")
    assert "not signed" in out, out


# ------------------------------------------------------------------------------ Cortex-M under QEMU
def test_verify_bare_metal_m0_m4() -> None:
    """The verifier compiled for Cortex-M0 (32-bit-only multiplies) and M4 accepts a signature and refuses a
    tampered one under QEMU; prints exact instruction counts (tools/sign_icount.py)."""
    from mpyml import baremetal as bm
    missing = bm.missing_tools(count=True)
    if missing:
        skip_or_fail(f"bare-metal verify: {missing}")
    sys.path.insert(0, str(paths.REPO / "tools"))
    import sign_icount
    for cpu in ("m0", "m4"):
        r = sign_icount.count(cpu, os.urandom(1000))
        print(f"\n{cpu}: Ed25519 verify of 1000 B: {r['instructions']:,} instructions, stack {r['stack_used']} B")
        assert 5_000_000 < r["instructions"] < 200_000_000 and r["stack_used"] < 8192
