# A/B models: `mpyml deploy --ab` keeps the previous model as <path>.prev; load_ab() falls back to it.


def load_ab(path, selftest=None, engine=None, arena=None, key=None):
    """Load path; if it is missing, fails validation or its signature check, or selftest(model) raises
    or returns False, load path + '.prev' instead. The model's .source is the path used and
    .fallback_reason (None when the new model was used) why the new one was rejected."""
    import gc
    from mpyml import load
    reasons = []
    for p in (path, path + ".prev"):
        m = None
        try:
            m = load(p, engine, arena, key)
            if selftest is not None:
                ok = selftest(m)
                if ok is False:
                    raise ValueError("the self-test returned False")
        except Exception as e:  # noqa: BLE001 - any failure of the new model means: use the old one
            reasons.append("%s: %s%s" % (p, "" if isinstance(e, ValueError) else type(e).__name__ + ": ", e))
            m = None
            gc.collect()
            continue
        m.source = p
        m.fallback_reason = reasons[0] if reasons else None
        return m
    raise ValueError("mpyml.load_ab: no usable model: " + "; ".join(reasons))
