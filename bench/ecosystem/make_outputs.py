"""Runs every quantize command of cases.py (reusing finished outputs). Used by check.sh before pytest,
so a failing quantize shows as such and not as a test error."""
import sys

import cases
import ecolib


def main():
    for m, tag in cases.HF_CASES:
        ecolib.quantize(m, tag, [*cases.SCHEMES[tag], *cases.TUNE, "--dataset", ecolib.calib_file(m),
                                 "--format", ",".join(cases.HF_FORMATS)])
    for m, mix in cases.GGUF_CASES:
        ecolib.quantize(m, "gguf-" + mix, [*cases.GGUF[mix], "--dataset", ecolib.calib_file(m), "--format", "gguf:" + mix])


if __name__ == "__main__":
    sys.exit(main())
