#!/usr/bin/env bash
# Wheels of the peers the GPU machine lacks (its image has torch, numpy, scipy, numba,
# scikit-learn, pytest, hypothesis; Python 3.12, x86-64, no network). Run here, then
# name .whl in the device tool's `carry`.
set -eu
py=${PYTHON:-.venv/bin/python}
mkdir -p .whl
"$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 -d .whl \
  hmmlearn==0.3.3 pomegranate==1.1.2
# apricot-select (pomegranate's dependency) and nose publish no wheel: build them.
"$py" -m pip wheel -q --no-deps -w .whl apricot-select==0.6.1 nose==1.3.7
ls .whl
