#!/usr/bin/env bash
# Builds histocnn and runs every test: the Catch2 suite (fast, [slow], and the entries that need the
# real data, the shared weights or a GPU), pytest, a find_package() build of an example against an
# installed copy, and the fuzz corpus replay. Real data and weights are used when ../shared (or
# HISTOCNN_DATA_DIR / HISTOCNN_WEIGHTS_DIR) provides them; what cannot run here is reported as
# skipped, with the reason, in the summary at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
HISTOCNN_DEPS_ARGS=--test bash scripts/build.sh
BUILD_DIR=${HISTOCNN_BUILD_DIR:-build}
rm -f "$BUILD_DIR/pytest.xml"
set +e
ctest --test-dir "$BUILD_DIR" --output-on-failure --timeout 1500 2>&1 | tee "$BUILD_DIR/ctest.log"
status=${PIPESTATUS[0]}
set -e
/usr/bin/python3 - "$BUILD_DIR" <<'PY'
import pathlib, re, sys
import xml.etree.ElementTree as ET
build = pathlib.Path(sys.argv[1])
log = (build / "ctest.log").read_text(errors="replace")
entries = re.findall(r"Test +#\d+: (\S+) \.+\**\s*(Passed|Failed|Not Run \(Disabled\)|Skipped|\S+)", log)
ran = [n for n, s in entries if s in ("Passed", "Failed")]
failed = [n for n, s in entries if s not in ("Passed", "Not Run (Disabled)", "Skipped")]
skipped = [n for n, s in entries if s in ("Not Run (Disabled)", "Skipped")]
reasons = dict(line.split(": ", 1) for line in (build / "skip_reasons.txt").read_text().splitlines() if ": " in line) \
    if (build / "skip_reasons.txt").exists() else {}
print(f"summary: ctest {len(ran)} ran, {len(skipped)} skipped, {len(failed)} failed"
      + (f" ({', '.join(failed)})" if failed else ""))
for name in skipped:
    print(f"  skipped {name}: {reasons.get(name, 'see its output in ctest.log')}")
junit = build / "pytest.xml"
if junit.exists():
    suite = ET.parse(junit).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    n, f, e, s = (int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped"))
    print(f"summary: pytest {n - s} ran, {s} skipped, {f + e} failed")
    for case in suite.iter("testcase"):
        skip = case.find("skipped")
        if skip is not None:
            print(f"  skipped {case.get('classname')}.{case.get('name')}: {skip.get('message', '')}")
PY
exit "$status"
