"""Model files: every parameter type round-trips, and a damaged, truncated,
foreign or newer file is refused with one clear error naming it."""

import json
import os

import joblib
import numpy as np
import pytest
import torch
from _configs import TINY as _TINY
from hypothesis import given, settings
from hypothesis import strategies as st

from skspivae import SPIVAE
from skspivae.datasets import make_fbm

TINY = dict(_TINY, max_epochs=1, random_state=0)


@pytest.fixture(scope="module")
def X():
    return make_fbm(32, 20, alpha=[0.5, 1.5], D=[1e-2], random_state=0)[0]


@pytest.fixture(scope="module")
def fitted(X):
    return SPIVAE(**TINY).fit(X)


@pytest.fixture
def saved(fitted, tmp_path):
    path = tmp_path / "model.pt"
    fitted.save(path)
    return path


# Values of one parameter in the types set_params accepts (what a search
# such as GridSearchCV(..., {"beta": np.logspace(...)}) sets).
def _as(kind, value):
    return {"int": int, "np.int64": np.int64, "np.int32": np.int32, "float": float,
            "np.float64": np.float64, "np.float32": np.float32}[kind](value)


numbers = st.sampled_from(["int", "np.int64", "np.int32"])
reals = st.sampled_from(["float", "np.float64", "np.float32"])
sizes = st.sampled_from(["tuple", "list", "array"])


@settings(max_examples=15, deadline=None)
@given(int_kind=numbers, real_kind=reals, size_kind=sizes, flag=st.booleans(),
       as_numpy_bool=st.booleans(), device=st.sampled_from(["cpu", "torch"]),
       schedule=st.sampled_from(["name", "stages"]))
def test_every_parameter_type_round_trips(fitted, X, tmp_path_factory, int_kind,
                                          real_kind, size_kind, flag, as_numpy_bool,
                                          device, schedule):
    hidden = {"tuple": (8,), "list": [8], "array": np.array([8])}[size_kind]
    params = dict(
        n_components=_as(int_kind, 2), encoder_hidden=hidden,
        decoder_hidden=hidden, batch_size=_as(int_kind, 16),
        beta=_as(real_kind, 1e-3), lr=_as(real_kind, 1e-3),
        warm_start=np.bool_(flag) if as_numpy_bool else flag,
        device=torch.device("cpu") if device == "torch" else "cpu",
        beta_schedule=("fbm_paper" if schedule == "name" else
                       [(_as(int_kind, 2), _as(real_kind, 1e-3)),
                        (_as(int_kind, 1), _as(real_kind, 0.0), "linear", 1)]),
        random_state=_as(int_kind, 3),
    )
    fitted.set_params(**params)
    path = tmp_path_factory.mktemp("files") / "model.pt"
    try:
        fitted.save(path)
        loaded = SPIVAE.load(path)
    finally:
        fitted.set_params(**{k: SPIVAE(**TINY).get_params()[k] for k in params})
    got = loaded.get_params()
    for name, value in params.items():
        if name in ("encoder_hidden", "decoder_hidden"):
            assert list(got[name]) == list(value)
        elif name == "beta_schedule" and schedule == "stages":
            assert [tuple(s) for s in got[name]] == [tuple(s) for s in value]
            assert all(type(v) in (int, float, str) for s in got[name] for v in s)
        elif name == "device":
            assert got[name] == "cpu"
        else:
            assert got[name] == value and not isinstance(got[name], np.generic)
    np.testing.assert_array_equal(loaded.transform(X), fitted.transform(X))


def test_file_has_the_mode_open_gives(saved, tmp_path, fitted):
    plain = tmp_path / "plain"
    with open(plain, "wb"):
        pass
    assert os.stat(saved).st_mode == os.stat(plain).st_mode
    os.chmod(saved, 0o640)  # replacing a file keeps its mode, as open would
    fitted.save(saved, overwrite=True)
    assert os.stat(saved).st_mode & 0o777 == 0o640


def test_changed_bytes_are_refused(saved):
    data = bytearray(saved.read_bytes())
    data[-100] ^= 0xFF  # inside the weights
    saved.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"model\.pt is damaged.*checksum"):
        SPIVAE.load(saved)


@pytest.mark.parametrize("keep", [0.2, 0.5, 0.9, 0.999])
def test_truncated_files_are_refused(saved, keep):
    data = saved.read_bytes()
    saved.write_bytes(data[:int(keep * len(data))])
    with pytest.raises(ValueError, match=r"model\.pt is truncated"):
        SPIVAE.load(saved)


@pytest.mark.parametrize("cut", [3, 20])
def test_files_cut_in_the_header_are_refused(saved, cut):
    saved.write_bytes(saved.read_bytes()[:cut])
    with pytest.raises(ValueError, match=r"model\.pt (is not a model|has a damaged)"):
        SPIVAE.load(saved)


def test_empty_and_foreign_files_are_refused(tmp_path, fitted):
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.pt is empty"):
        SPIVAE.load(empty)
    pickled = tmp_path / "joblib.pt"
    joblib.dump(fitted, pickled)
    with pytest.raises(ValueError, match=r"joblib\.pt is not a model written by"):
        SPIVAE.load(pickled)
    noise = tmp_path / "noise.pt"
    noise.write_bytes(np.random.default_rng(0).bytes(1000))
    with pytest.raises(ValueError, match=r"noise\.pt is not a model written by"):
        SPIVAE.load(noise)
    with pytest.raises(FileNotFoundError, match="missing"):
        SPIVAE.load(tmp_path / "missing.pt")


def _rewrite_header(path, **changes):
    data = path.read_bytes()
    magic, header, content = data.split(b"\n", 2)
    header = json.loads(header)
    header.update(changes)
    path.write_bytes(magic + b"\n" + json.dumps(header).encode() + b"\n" + content)


def test_newer_format_is_refused(saved):
    _rewrite_header(saved, format=99)
    with pytest.raises(ValueError, match="newer version of skspivae"):
        SPIVAE.load(saved)


def test_unknown_parameters_are_refused(fitted, tmp_path, monkeypatch):
    path = tmp_path / "model.pt"
    original = SPIVAE.get_params
    monkeypatch.setattr(SPIVAE, "get_params",
                        lambda self, deep=True: {**original(self, deep), "quantum": 1})
    fitted.save(path)
    monkeypatch.undo()
    with pytest.raises(ValueError, match=r"model\.pt has parameters .* quantum"):
        SPIVAE.load(path)


def test_save_killed_halfway_leaves_the_old_file(saved, fitted, monkeypatch):
    before = saved.read_bytes()

    def killed(fd):
        raise KeyboardInterrupt  # after the content went to the temporary file

    monkeypatch.setattr(os, "fsync", killed)
    with pytest.raises(KeyboardInterrupt):
        fitted.save(saved, overwrite=True)
    monkeypatch.undo()
    assert saved.read_bytes() == before
    assert os.listdir(saved.parent) == ["model.pt"]
