"""The ``skspivae`` command line, run in-process through ``main``."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from skspivae import SPIVAE
from skspivae._cli import main

# A tiny architecture (receptive field 8) and training, through --param.
TINY = ["--param", "encoder_hidden=(16,)", "--param", "decoder_hidden=(16,)",
        "--param", "layer_size=2", "--param", "encoder_channels=4",
        "--n-components", "3", "--max-epochs", "2", "--batch-size", "16",
        "--seed", "0", "--verbose", "0", "--device", "cpu"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "fbm.npz"
    assert main(["simulate", "-o", str(path), "-n", "24", "-T", "40",
                 "--alpha", "0.5,1.5", "-D", "1e-3:1e-2:2", "--seed", "1"]) == 0
    return path


@pytest.fixture(scope="module")
def model(data):
    path = data.parent / "model.pt"
    assert main(["fit", str(data), "-o", str(path)] + TINY) == 0
    return path


def assert_one_line_error(capsys, code, text):
    """Exit status != 0 and exactly one line on stderr that mentions ``text``."""
    err = capsys.readouterr().err
    assert code != 0
    assert err.count("\n") == 1 and err.startswith("skspivae: error: "), err
    assert "Traceback" not in err and text in err, err


def test_simulate_writes_a_grid(data):
    with np.load(data) as f:
        X, y = f["X"], f["y"]
    assert X.shape == (24, 40) and y.shape == (24, 2)
    assert np.all(X[:, 0] == 0)
    assert sorted(set(y[:, 0])) == [0.5, 1.5]
    np.testing.assert_allclose(sorted(set(y[:, 1])), [1e-3, 1e-2])


def test_simulate_is_seeded(tmp_path):
    paths = [tmp_path / "a.npz", tmp_path / "b.npz"]
    for path in paths:
        assert main(["simulate", "-o", str(path), "--process", "sbm", "-n", "6",
                     "-T", "20", "--design", "uniform", "--alpha", "0.3,1.2",
                     "-D", "1e-3,1e-2", "--seed", "3"]) == 0
    a, b = (np.load(p) for p in paths)
    np.testing.assert_array_equal(a["X"], b["X"])
    assert a["y"][:, 0].min() >= 0.3 and a["y"][:, 0].max() <= 1.2


def test_fit_passes_parameters_and_saves(model):
    est = SPIVAE.load(model)
    assert est.n_components == 3 and est.layer_size == 2
    assert est.encoder_hidden == (16,) and est.n_iter_ == 2


def test_fit_accepts_a_staged_schedule(data, tmp_path, capsys):
    out = tmp_path / "m.pt"
    tiny = [a for a in TINY if a not in ("--max-epochs", "2")]
    assert main(["fit", str(data), "-o", str(out), "--beta-schedule",
                 "[[1, 0], [1, 1e-3]]"] + tiny) == 0
    est = SPIVAE.load(out)
    assert [h["beta"] for h in est.history_] == [0.0, 1e-3]
    assert "active neurons" in capsys.readouterr().out


def test_fit_reads_npy(data, tmp_path):
    npy = tmp_path / "X.npy"
    np.save(npy, np.load(data)["X"])
    assert main(["fit", str(npy), "-o", str(tmp_path / "m.pt")] + TINY) == 0


def test_transform_writes_latent_means(model, data, tmp_path):
    npy, npz = tmp_path / "z.npy", tmp_path / "z.npz"
    assert main(["transform", str(model), str(data), "-o", str(npy)]) == 0
    assert main(["transform", str(model), str(data), "-o", str(npz)]) == 0
    X = np.load(data)["X"]
    np.testing.assert_allclose(np.load(npy), SPIVAE.load(model).transform(X))
    with np.load(npz) as f:
        assert f["mu"].shape == f["logvar"].shape == (24, 3)
        assert f["y"].shape == (24, 2)


@pytest.mark.skipif(not hasattr(SPIVAE, "sample"), reason="no SPIVAE.sample yet")
def test_sample_writes_trajectories(model, tmp_path):
    out = tmp_path / "gen.npz"
    assert main(["sample", str(model), "-o", str(out), "-n", "3", "-T", "30",
                 "--seed", "0", "--z", "[0.5, -1.0, 0.0]"]) == 0
    with np.load(out) as f:
        assert f["X"].shape == (3, 30) and np.all(f["X"][:, 0] == 0)
        np.testing.assert_array_equal(f["z"], [0.5, -1.0, 0.0])
    z = tmp_path / "z.npy"
    np.save(z, np.zeros((2, 3)))
    assert main(["sample", str(model), "-o", str(tmp_path / "g2.npz"),
                 "--z", str(z), "--seed", "0"]) == 0


def test_inspect_writes_table_and_figures(model, data, tmp_path, capsys):
    out = tmp_path / "inspect"
    assert main(["inspect", str(model), str(data), "-o", str(out), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["neuron"] for r in rows] == ["spivae0", "spivae1", "spivae2"]
    assert set(rows[0]["spearman"]) == {"alpha", "log D"}
    assert {"neurons.txt", "neurons.json", "history.png",
            "kl_per_component.png"} <= set(os.listdir(out))


def test_demo_quick(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "neurons survive" in printed and "rho(alpha)" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["recipe"] == "quick"
    assert len(summary["kl_divergence"]) == summary["parameters"]["n_components"]
    assert {"fit_s", "total_s"} <= set(summary["timings"])
    assert {"model.pt", "history.png", "kl_per_component.png"} <= set(os.listdir(out))
    assert SPIVAE.load(out / "model.pt").n_iter_ == summary["n_epochs"]


# --- errors: one line on stderr, a non-zero status, nothing overwritten --------

def test_existing_output_is_refused(model, data, capsys):
    before = model.read_bytes()
    code = main(["fit", str(data), "-o", str(model)] + TINY)
    assert_one_line_error(capsys, code, "--overwrite")
    assert model.read_bytes() == before
    code = main(["simulate", "-o", str(data)])
    assert_one_line_error(capsys, code, "exists")


def test_overwrite_replaces(data, tmp_path):
    out = tmp_path / "m.pt"
    out.write_bytes(b"old")
    assert main(["fit", str(data), "-o", str(out), "--overwrite"] + TINY) == 0
    assert SPIVAE.load(out).n_iter_ == 2


def test_demo_refuses_a_non_empty_folder(tmp_path, capsys):
    (tmp_path / "model.pt").write_bytes(b"keep")
    code = main(["demo", "--quick", "--out", str(tmp_path)])
    assert_one_line_error(capsys, code, "not empty")
    assert (tmp_path / "model.pt").read_bytes() == b"keep"


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_demo_without_cuda_fails_early(tmp_path, capsys):
    code = main(["demo", "--quick", "--device", "cuda", "--out", str(tmp_path / "d")])
    assert_one_line_error(capsys, code, "CUDA is not available")
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("content, text", [
    (None, "no such file"),
    (b"not numpy", "not a readable"),
    (np.zeros(5), "2-D"),
    ({"Z": np.zeros((4, 40))}, "no array 'X'"),
])
def test_bad_data_file(tmp_path, capsys, content, text):
    path = tmp_path / ("d.npz" if isinstance(content, dict) else "d.npy")
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, dict):
        np.savez(path, **content)
    elif content is not None:
        np.save(path, content)
    code = main(["fit", str(path), "-o", str(tmp_path / "m.pt")] + TINY)
    assert_one_line_error(capsys, code, text)
    assert not (tmp_path / "m.pt").exists()


def test_too_short_trajectories(tmp_path, capsys):
    path = tmp_path / "short.npy"
    np.save(path, np.zeros((10, 1)))  # one position: no displacement
    code = main(["fit", str(path), "-o", str(tmp_path / "m.pt")] + TINY)
    assert_one_line_error(capsys, code, "needs at least")


@pytest.mark.parametrize("args, text", [
    (["--beta-schedule", "fbm_papr"], "beta_schedule"),
    (["--beta-schedule", "[(0, 1e-3)]"], "n_epochs"),
    (["--param", "no_such_parameter=1"], "no_such_parameter"),
    (["--param", "layer_size=-2"], "layer_size"),
])
def test_bad_parameters(data, tmp_path, capsys, args, text):
    code = main(["fit", str(data), "-o", str(tmp_path / "m.pt")] + TINY + args)
    assert_one_line_error(capsys, code, text)


def test_bad_model_and_inspect_without_y(model, data, tmp_path, capsys):
    code = main(["transform", str(data), str(data), "-o", str(tmp_path / "z.npy")])
    assert_one_line_error(capsys, code, "not a model")
    npy = tmp_path / "X.npy"
    np.save(npy, np.load(data)["X"])
    code = main(["inspect", str(model), str(npy), "-o", str(tmp_path / "i")])
    assert_one_line_error(capsys, code, "no array 'y'")
    assert not (tmp_path / "i").exists()


def test_usage_error_is_one_line(capsys):
    code = main(["fit"])
    assert_one_line_error(capsys, code, "required")
    assert code == 2


def test_python_m_help():
    result = subprocess.run([sys.executable, "-m", "skspivae", "--help"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for command in ("simulate", "fit", "transform", "sample", "inspect", "demo"):
        assert command in result.stdout


def test_outputs_get_the_mode_a_plain_open_gives(tmp_path):
    plain = tmp_path / "plain"
    plain.write_bytes(b"")
    data = tmp_path / "fbm.npz"
    assert main(["simulate", "-o", str(data), "-n", "8", "-T", "30", "--alpha", "1",
                 "-D", "1e-2"]) == 0
    assert os.stat(data).st_mode == os.stat(plain).st_mode
    model = tmp_path / "m.pt"
    assert main(["fit", str(data), "-o", str(model)] + TINY) == 0
    assert os.stat(model).st_mode == os.stat(plain).st_mode
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
