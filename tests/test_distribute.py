"""tf.distribute: MirroredStrategy on two logical CPU devices, MultiWorkerMirroredStrategy with two local workers."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

# Each test starts TensorFlow in worker processes: about 65 s on an idle 2-core machine beside another test.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]
WORKER = Path(__file__).with_name("distributed_worker.py")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


def _weights(path: Path) -> list[np.ndarray]:
    saved = np.load(path)
    return [saved[key] for key in saved.files if key.startswith("arr_")]


def test_mirrored_strategy_keeps_two_replicas_identical(train_val_csvs, tmp_path):
    out = tmp_path / "mirrored.npz"
    result = subprocess.run(
        [sys.executable, str(WORKER), "mirrored", *train_val_csvs, str(tmp_path / "run"), str(out)],
        capture_output=True,
        text=True,
        timeout=360,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    saved = np.load(out)
    assert int(saved["replicas"]) == 2
    assert float(saved["spread"]) == 0.0


def test_two_workers_end_with_identical_weights(train_val_csvs, tmp_path):
    workers = [f"localhost:{_free_port()}", f"localhost:{_free_port()}"]
    processes = []
    for index in range(2):
        environment = os.environ | {
            "TF_CONFIG": json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}),
            "CUDA_VISIBLE_DEVICES": "",
        }
        command = [
            sys.executable,
            str(WORKER),
            "multiworker",
            *train_val_csvs,
            str(tmp_path / f"run{index}"),
            str(tmp_path / f"worker{index}.npz"),
        ]
        processes.append(
            subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        )
    try:
        outputs = [process.communicate(timeout=300) for process in processes]
    finally:
        for process in processes:
            process.kill()
    for process, (_, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr[-3000:]
    assert all(int(np.load(tmp_path / f"worker{i}.npz")["in_sync"]) == 2 for i in range(2))
    for index in range(2):
        history = (tmp_path / f"run{index}" / "history.csv").read_text().splitlines()
        assert len(history) == 3 and "val_volume_dice" in history[0]  # header + 2 epochs
        assert any((tmp_path / f"run{index}" / "saved_model").iterdir())
    first, second = _weights(tmp_path / "worker0.npz"), _weights(tmp_path / "worker1.npz")
    assert len(first) == len(second) > 0
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
