"""emix._atomic.write_atomic: whole files or none, with the permissions open() gives."""

import os
import stat
import threading

import pytest

from emix._atomic import write_atomic


def _umask():
    # Read in a child process: reading it here would need os.umask, which the code
    # under test must not call.
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", "import os; m = os.umask(0); print(m)"],
        capture_output=True, text=True, check=True,
    )
    return int(out.stdout)


def test_writes_whole_file_with_the_mode_open_would_give(tmp_path, monkeypatch):
    def no_umask(*args):
        raise AssertionError("write_atomic must not touch the process umask")

    monkeypatch.setattr(os, "umask", no_umask)
    target = tmp_path / "out.bin"
    write_atomic(target, lambda fh: fh.write(b"payload"))
    monkeypatch.undo()
    assert target.read_bytes() == b"payload"
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~_umask()
    plain = tmp_path / "plain.bin"
    plain.write_bytes(b"")
    assert stat.S_IMODE(target.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)
    assert sorted(os.listdir(tmp_path)) == ["out.bin", "plain.bin"]


def test_failure_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")

    def broken(fh):
        fh.write(b"half")
        raise OSError("No space left on device")

    with pytest.raises(OSError, match="No space left"):
        write_atomic(str(target), broken)
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.bin"]


def test_concurrent_writers_never_leave_a_partial_file(tmp_path):
    target = tmp_path / "out.bin"
    payloads = [bytes([i]) * 100_000 for i in range(8)]
    threads = [
        threading.Thread(target=write_atomic, args=(target, lambda fh, p=p: fh.write(p)))
        for p in payloads
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert target.read_bytes() in payloads
    assert os.listdir(tmp_path) == ["out.bin"]
