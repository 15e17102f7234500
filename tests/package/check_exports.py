#!/usr/bin/env python3
"""The shared library exports exactly the public API: every dynamic symbol belongs to a declaration that
include/culstm/ marks CULSTM_API (C++ classes and functions in namespace culstm, C functions culstm_*), and every
such declaration is exported. Internals (culstm::detail, culstm::io, backends, std:: instantiations) must not be.

usage: check_exports.py NM LIBRARY INCLUDE_DIR
"""
import os
import re
import subprocess
import sys

NM, LIBRARY, INCLUDE_DIR = sys.argv[1], sys.argv[2], sys.argv[3]


def declared_api():
    """Names marked CULSTM_API in the public headers: (C++ classes, C++ functions, C functions)."""
    classes, cpp_functions, c_functions = set(), set(), set()
    for name in sorted(os.listdir(INCLUDE_DIR)):
        if not name.endswith((".h", ".hpp")):
            continue
        with open(os.path.join(INCLUDE_DIR, name)) as f:
            text = f.read()
        text = re.sub(r"//[^\n]*|/\*.*?\*/", " ", text, flags=re.S)  # comments may mention CULSTM_API
        text = text.replace("#define CULSTM_API", "")
        for m in re.finditer(r"\b(?:class|struct)\s+(?:\[\[\w+\]\]\s*)?CULSTM_API\s+(\w+)", text):
            classes.add(m.group(1))
        for m in re.finditer(r"CULSTM_API\s+(?!class\b|struct\b)[^;{()]*?\b(\w+)\s*\(", text):
            (c_functions if m.group(1).startswith("culstm_") else cpp_functions).add(m.group(1))
    return classes, cpp_functions, c_functions


def exported_symbols():
    out = subprocess.run([NM, "-D", "--defined-only", "-C", LIBRARY], check=True, capture_output=True,
                         text=True).stdout
    symbols = []
    for line in out.splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3:
            symbols.append(parts[2])
    return symbols


def main():
    classes, cpp_functions, c_functions = declared_api()
    symbols = exported_symbols()
    problems = []
    if not classes or not cpp_functions or not c_functions:
        problems.append(f"found no CULSTM_API declarations in {INCLUDE_DIR} (classes={classes}, "
                        f"functions={cpp_functions}, C functions={c_functions})")
    seen_classes, seen_cpp, seen_c = set(), set(), set()
    for sym in symbols:
        name = re.sub(r"^(typeinfo name for|typeinfo for|vtable for|VTT for) ", "", sym)
        if name.startswith("culstm::"):
            head = re.match(r"culstm::(\w+)", name).group(1)
            rest = name[len("culstm::") + len(head):]
            if head in classes and rest.startswith("::"):
                seen_classes.add(head)
            elif head in cpp_functions and (rest.startswith("(") or rest.startswith("[abi:")):
                seen_cpp.add(head)
            elif head in classes and rest == "" and sym != name:  # typeinfo / vtable of an exported class
                seen_classes.add(head)
            else:
                problems.append(f"exported but not public API: {sym}")
        elif re.fullmatch(r"culstm_\w+", name):
            if name in c_functions:
                seen_c.add(name)
            else:
                problems.append(f"exported C symbol not declared CULSTM_API in culstm.h: {sym}")
        else:
            problems.append(f"exported non-culstm symbol: {sym}")
    for missing in sorted(classes - seen_classes):
        problems.append(f"class culstm::{missing} is CULSTM_API but none of its members is exported")
    for missing in sorted(cpp_functions - seen_cpp):
        problems.append(f"function culstm::{missing} is CULSTM_API but not exported")
    for missing in sorted(c_functions - seen_c):
        problems.append(f"C function {missing} is CULSTM_API but not exported")
    if problems:
        print(f"{LIBRARY}: {len(problems)} problem(s):")
        for p in problems:
            print("  " + p)
        return 1
    print(f"{LIBRARY}: {len(symbols)} exported symbols, all public API ({len(classes)} classes, "
          f"{len(cpp_functions)} C++ functions, {len(c_functions)} C functions)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
