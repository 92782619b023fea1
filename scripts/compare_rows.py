#!/usr/bin/env python3
"""Compare two `tidemark run`-style NDJSON outputs as multisets of rows.

    scripts/compare_rows.py EXPECTED.ndjson ACTUAL.ndjson [--output windows]

Each line is `{"output": name, "row": {...}}`; only lines of the given output
(default `windows`) are compared. Rows must match one to one: the same fields,
integers (key, start, end, count) equal, floats (sum, min, max, avg) within a
relative tolerance of 1e-9. Near zero a relative tolerance means nothing (a sum
whose exact value is 0 may come out as 1e-13 from a naive f64 sum), so floats
also match within an absolute 1e-9, far below the 0.01 resolution of the
benchmark's values. Exit 0 when they match, 1 (with the first differences on
stderr) when they do not, 2 on usage or input errors.
"""

import json
import math
import sys
from collections import defaultdict

REL_TOL = 1e-9
ABS_TOL = 1e-9
MAX_REPORTED = 10


def load(path, output):
    """Rows of `output` in `path`, grouped by their non-float fields."""
    groups = defaultdict(list)
    n = 0
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                sys.exit(f"compare_rows: {path}:{lineno}: not JSON: {e}")
            if record.get("output") != output:
                continue
            row = record["row"]
            exact = tuple(sorted((k, json.dumps(v)) for k, v in row.items() if not isinstance(v, float)))
            floats = tuple(sorted((k, v) for k, v in row.items() if isinstance(v, float)))
            groups[exact].append(floats)
            n += 1
    return groups, n


def floats_match(a, b):
    if [k for k, _ in a] != [k for k, _ in b]:
        return False
    return all(math.isclose(x, y, rel_tol=REL_TOL, abs_tol=ABS_TOL) for (_, x), (_, y) in zip(a, b))


def show(exact, floats):
    return json.dumps({**{k: json.loads(v) for k, v in exact}, **dict(floats)})


def compare(expected, actual):
    """Yields a description of each difference."""
    for exact in sorted(expected.keys() | actual.keys()):
        want, got = sorted(expected.get(exact, [])), sorted(actual.get(exact, []))
        unmatched = []
        for w in want:
            i = next((i for i, g in enumerate(got) if floats_match(w, g)), None)
            if i is None:
                unmatched.append(w)
            else:
                got.pop(i)
        for w in unmatched:
            yield f"only in expected: {show(exact, w)}"
        for g in got:
            yield f"only in actual:   {show(exact, g)}"


def main(argv):
    args, output = [], "windows"
    it = iter(argv[1:])
    for arg in it:
        if arg == "--output":
            output = next(it, None) or sys.exit("compare_rows: --output needs a value")
        else:
            args.append(arg)
    if len(args) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    (expected, n_expected), (actual, n_actual) = load(args[0], output), load(args[1], output)
    differences = list(compare(expected, actual))
    if differences:
        print(f"compare_rows: MISMATCH in `{output}`: {len(differences)} unmatched rows "
              f"({n_expected} in {args[0]}, {n_actual} in {args[1]})", file=sys.stderr)
        for d in differences[:MAX_REPORTED]:
            print(f"  {d}", file=sys.stderr)
        return 1
    print(f"compare_rows: `{output}` rows match ({n_expected} rows, floats within {REL_TOL:g} relative)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
