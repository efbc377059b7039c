#!/usr/bin/env bash
# Fails if any tracked C/C++ source differs from clang-format's output.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files -co --exclude-standard -- '*.cpp' '*.hpp' '*.h' '*.c' | grep -v '^build')
((${#files[@]})) || exit 0
clang-format --dry-run --Werror "${files[@]}"
