#!/usr/bin/env bash
# Prints the path of a Python the course supports (3.11 to 3.14), for `make` to build .venv with:
# $PYTHON when it is set (and supported), else the first of python3.12, python3.11, python3.13,
# python3.14, python3 on the PATH that is. Otherwise it says which versions are needed and fails.
set -u
supported() { "$1" -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 14))' 2>/dev/null; }
if [ -n "${PYTHON:-}" ]; then
  if command -v "$PYTHON" >/dev/null 2>&1 && supported "$PYTHON"; then command -v "$PYTHON"; exit 0; fi
  found=$(command -v "$PYTHON" >/dev/null 2>&1 && "$PYTHON" --version 2>&1 | head -1 || echo "not found")
  echo "PYTHON=$PYTHON is not a Python 3.11-3.14 ($found): the course supports 3.11, 3.12, 3.13 and 3.14." >&2
  exit 1
fi
for py in python3.12 python3.11 python3.13 python3.14 python3; do
  if command -v "$py" >/dev/null 2>&1 && supported "$py"; then command -v "$py"; exit 0; fi
done
echo "No supported Python found: the course needs Python 3.11, 3.12, 3.13 or 3.14 (python3 here: $(command -v python3 >/dev/null 2>&1 && python3 --version 2>&1 || echo 'not found'))." >&2
echo "Install one of them, or name it: make lab PYTHON=/path/to/python3.12" >&2
exit 1
