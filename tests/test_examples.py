"""The scripts in examples/ run as documented and show what they claim."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _run(name, capsys) -> str:
    runpy.run_path(str(EXAMPLES / name), run_name="__main__")
    return capsys.readouterr().out


def test_every_example_is_tested():
    tested = {"missing_values.py"}
    assert {p.name for p in EXAMPLES.glob("*.py")} == tested


def test_missing_values(capsys):
    out = _run("missing_values.py", capsys)
    rows = dict(re.findall(r"^(complete cases|mean imputation|EM with missing values)\s+"
                           r"([\d.]+\s+[\d.]+)$", out, flags=re.M))
    err = {k: [float(x) for x in v.split()] for k, v in rows.items()}
    assert err["EM with missing values"][1] < err["mean imputation"][1]
    assert err["EM with missing values"][0] < err["mean imputation"][0]
    rmse = re.search(r"conditional means ([\d.]+), column means ([\d.]+)", out)
    assert float(rmse.group(1)) < float(rmse.group(2))
    assert "HMM through a 30-step gap" in out
