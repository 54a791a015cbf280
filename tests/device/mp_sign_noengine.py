# A board without the native module: signature checks need it; say so (tests/test_sign.py).
import mpyml
import mptest
from mptest import arg


def test_needs_native_module():
    try:
        import mpyml_engine  # noqa: F401
        raise AssertionError("mpyml_engine importable: this test must run without it")
    except ImportError:
        pass
    mpyml.load(arg("unsigned"), engine="viper")  # unsigned, no key: the viper engine loads it
    try:
        mpyml.load(arg("signed"), engine="viper", key=arg("pub"))
    except ValueError as e:
        if "needs the native module mpyml_engine" not in str(e):
            raise
        print("MESSAGE", e)
        return
    raise AssertionError("a signature was accepted without a verifier")


mptest.main(globals())
