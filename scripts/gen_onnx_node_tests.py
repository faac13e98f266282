#!/usr/bin/python3
"""Generates the conformance cases the test suite runs: ONNX's backend node tests plus our fixtures.

Usage: /usr/bin/python3 scripts/gen_onnx_node_tests.py DIR

Writes, under DIR:
  node/test_*/, simple/test_*/   ONNX's backend test cases (onnx.backend.test.cmd_tools
                                 generate-data), each model.onnx + test_data_set_*/{input,output}_N.pb
  test_*/, bad_*/                the hand-made cases of tests/fixtures/gen_*_cases.py, each run as
                                 `gen_x_cases.py DIR`

Needs Debian's python3-onnx and python3-numpy, hence /usr/bin/python3. Nothing generated here is
committed: the test run regenerates it into the build directory.
"""

import builtins
import glob
import os
import subprocess
import sys

import numpy as np

# ONNX 1.12's case generators still spell dtypes as np.float, np.int, ...; NumPy 1.24 removed those
# deprecated aliases. They were always the Python builtins, so putting the builtins back is exact.
_REMOVED_NUMPY_ALIASES = ("float", "int", "bool", "object", "str", "complex")


def restore_numpy_aliases() -> None:
    for name in _REMOVED_NUMPY_ALIASES:
        if name not in np.__dict__:
            setattr(np, name, getattr(builtins, name))


def generate_onnx_cases(out_dir: str) -> None:
    restore_numpy_aliases()
    # Imported only now: the case modules read the aliases at import time.
    from onnx.backend.test import cmd_tools

    cmd_tools.generate_data(cmd_tools.argparse.Namespace(output=out_dir, op_type=None))


def generate_fixtures(out_dir: str) -> int:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    failed = 0
    for script in sorted(glob.glob(os.path.join(root, "tests", "fixtures", "gen_*_cases.py"))):
        rc = subprocess.call([sys.executable, script, out_dir])
        if rc != 0:
            print(f"gen_onnx_node_tests: {os.path.basename(script)} exited with {rc}",
                  file=sys.stderr)
            failed += 1
    return failed


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: gen_onnx_node_tests.py DIR", file=sys.stderr)
        return 2
    out_dir = os.path.abspath(sys.argv[1])
    os.makedirs(out_dir, exist_ok=True)
    generate_onnx_cases(out_dir)
    return 1 if generate_fixtures(out_dir) else 0


if __name__ == "__main__":
    sys.exit(main())
