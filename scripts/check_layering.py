#!/usr/bin/env python3
"""Checks that every #include between concepts follows the allowed dependencies.

The allowed dependencies are the DEPENDS lists of the vimvq_concept(...) calls in CMakeLists.txt
(the one place they are declared). A file in src/<c>/ or include/vimvq/<c>/ may include headers of
<c> itself and of the concepts <c> depends on, directly or through them; and only src/log/ may
include spdlog (PyTorch 2.x ships fmt headers that must never meet spdlog's). Exit 1 naming each
violation.
"""
import os
import re
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def allowed_dependencies():
    with open(os.path.join(REPO, "CMakeLists.txt")) as f:
        text = f.read()
    deps = {}
    for name, body in re.findall(r"vimvq_concept\((\w+)\s+DEPENDS\s*([^)]*?)\s*SOURCES", text, re.S):
        deps[name] = set(body.split())
    closure = {}

    def reach(c):
        if c not in closure:
            closure[c] = {c}
            for d in deps.get(c, ()):
                closure[c] |= reach(d)
        return closure[c]

    for c in deps:
        reach(c)
    return closure


def main():
    allowed = allowed_dependencies()
    if not allowed:
        print("check_layering: no vimvq_concept(...) calls found in CMakeLists.txt", file=sys.stderr)
        return 1
    bad = []
    for root in ("src", os.path.join("include", "vimvq")):
        for concept in sorted(os.listdir(os.path.join(REPO, root))):
            if concept not in allowed:
                continue
            folder = os.path.join(REPO, root, concept)
            for name in sorted(os.listdir(folder)):
                path = os.path.join(folder, name)
                with open(path, errors="replace") as f:
                    for line_no, line in enumerate(f, 1):
                        if re.match(r"\s*#include\s+<spdlog/", line) and concept != "log":
                            bad.append(f"{os.path.relpath(path, REPO)}:{line_no}: only log/ may include spdlog")
                        m = re.match(r'\s*#include\s+"(?:vimvq|src)/(\w+)/', line)
                        if m and m.group(1) in allowed and m.group(1) not in allowed[concept]:
                            bad.append(f"{os.path.relpath(path, REPO)}:{line_no}: {concept} may not include "
                                       f"{m.group(1)} ({line.strip()})")
    for b in bad:
        print(b, file=sys.stderr)
    print(f"check_layering: {len(allowed)} concepts, {len(bad)} violations")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
