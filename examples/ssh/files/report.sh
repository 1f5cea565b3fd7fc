#!/bin/sh
# Runs on the machine: a short description of it.
echo "kernel: $(uname -sr)"
echo "files uploaded: $(find "$(dirname "$0")" -type f | wc -l)"
