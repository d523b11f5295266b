"""The command line: JSON shapes, readable tables, and one-line errors with exit status 2."""

import json
import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.cli import main
from sim.config import CONFIG_FIELDS


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_run_json_has_every_field(capsys) -> None:
    code, out, err = _run(capsys, "run", "--T", "8", "--d", "8", "--depth", "2", "--beta", "1.0",
                          "--norm", "post", "--samples", "4", "--seed", "0", "--json")
    assert code == 0
    obj = json.loads(out)
    assert set(obj) >= {"config", "samples", "seed", "version", "layers"}
    assert set(obj["config"]) == set(CONFIG_FIELDS)
    assert obj["samples"] == 4 and len(obj["layers"]) == 3
    assert set(obj["layers"][1]["cosine"]) == {"mean", "se"}


def test_run_rows_kind(capsys) -> None:
    code, out, _ = _run(capsys, "run", "--T", "8", "--d", "8", "--depth", "1", "--samples", "4",
                        "--kind", "rows", "--json")
    obj = json.loads(out)
    assert code == 0 and obj["kind"] == "rows" and len(obj["layers"]) == 1
    assert set(obj["layers"][0]) == {"layer", "entropy", "ipr", "overlap", "y3"}


def test_figures_list(capsys) -> None:
    code, out, _ = _run(capsys, "figures", "--list")
    assert code == 0 and "gap3_stable_rank" in out and "remf_ipr" in out


def test_run_table(capsys) -> None:
    code, out, _ = _run(capsys, "run", "--T", "8", "--d", "8", "--depth", "1", "--samples", "4")
    assert code == 0 and "stable_rank" in out and "seed=0" in out


def test_verify_json(capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SIGPROP_CACHE_DIR", str(tmp_path))
    code, out, _ = _run(capsys, "verify", "GAP-3", "--profile", "quick", "--json")
    assert code == 0
    (claim,) = json.loads(out)
    assert claim["id"] == "GAP-3" and claim["verdict"] in ("confirmed", "qualified", "refuted",
                                                           "open")
    keys = {"params", "prediction", "estimate", "se", "z", "detectable", "passed"}
    assert all(keys <= set(c) for c in claim["comparisons"])


def test_predict(capsys) -> None:
    code, out, _ = _run(capsys, "predict", "gap3_stable_rank_limit", "markov_s=0")
    assert code == 0 and float(out) == 1.0


def test_predict_layer_ipr_and_entropy_forms_and_list(capsys) -> None:
    """``sigprop predict ipr --T 64 --d 64 --beta 2 --json`` (the issue's form), ``--KEY=VALUE``
    and ``KEY=VALUE`` give the same value; ``--list`` names ``ipr`` and ``entropy`` with their
    parameters and the asymptotic variants under their own names."""
    code, out, _ = _run(capsys, "predict", "ipr", "--T", "64", "--d", "64", "--beta", "2",
                        "--json")
    obj = json.loads(out)
    assert code == 0 and obj["name"] == "ipr"
    assert obj["params"] == {"T": 64, "d": 64, "beta": 2.0}
    for argv in (["predict", "ipr", "--T=64", "--d=64", "--beta=2"],
                 ["predict", "ipr", "T=64", "d=64", "beta=2"]):
        code, out, _ = _run(capsys, *argv)
        assert code == 0 and float(out) == obj["value"]
    code, out, _ = _run(capsys, "predict", "--list")
    lines = {line.split()[0]: line for line in out.splitlines()}
    assert code == 0 and "(T, d, beta)" in lines["ipr"] and "(T, d, beta)" in lines["entropy"]
    assert "rem2_ipr_asymptotic" in lines and "rem1_entropy_asymptotic" in lines


def test_predict_layer_values_match_the_engine(capsys) -> None:
    """``predict ipr`` and ``predict entropy`` (nats) against the engine's ``kind="rows"`` of the
    same layer (one head, orthogonal tokens, ``d = T``), within 5 SE; their 1.1x twins are
    rejected."""
    from sim.config import Config
    from sim.montecarlo import simulate

    result = simulate(Config(T=16, d=16, depth=1, mlp=False, norm="none", beta=2.0), 4000,
                      seed=3, kind="rows", progress=False)
    for name in ("ipr", "entropy"):
        code, out, _ = _run(capsys, "predict", name, "--T", "16", "--d", "16", "--beta", "2")
        est = result.estimate(name, 0)
        assert code == 0 and abs(float(out) - est.mean) < 5 * est.se
        assert abs(1.1 * float(out) - est.mean) > 5 * est.se


@pytest.mark.parametrize("argv,needle", [
    (["predict", "ipr", "--T", "512", "--d", "64", "--beta", "2"], "T <= d"),
    (["predict", "ipr", "--T", "64", "--d"], "needs a value"),
    (["predict", "ipr", "--T", "64", "--d", "64"], "missing: beta"),
    (["run", "--T", "1"], "T=1"),
    (["run", "--T", "16", "--d", "8"], "isometric"),
    (["run", "--norm", "bogus"], "norm='bogus'"),
    (["run", "--sigma-v2", "nan"], "sigma_v2"),
    (["run", "--sigma-v2", "-1"], "sigma_v2"),
    (["run", "--T", "abc"], "--T"),
    (["run", "--samples", "0"], "--samples"),
    (["run", "--mlp", "perhaps"], "boolean"),
    (["verify", "GAP-99"], "unknown claim"),
    (["verify", "--profile", "huge"], "huge"),
    (["predict", "nope"], "unknown prediction"),
    (["predict", "gap3_stable_rank_limit", "markov_s"], "KEY=VALUE"),
    (["frobnicate"], "frobnicate"),
    (["figures", "nope"], "unknown figure"),
    (["run", "--kind", "rows", "--input", "gaussian"], "kind='rows'"),
    (["run", "--kind", "bogus"], "--kind"),
])
def test_bad_input_is_one_line_exit_2(capsys, argv, needle) -> None:
    code, out, err = _run(capsys, *argv)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("sigprop: error:") and needle in err
    assert "Traceback" not in err


_invalid = st.one_of(
    st.tuples(st.just("--T"), st.integers(-5, 1).map(str)),
    st.tuples(st.just("--d"), st.integers(-5, 0).map(str)),
    st.tuples(st.sampled_from(["--sigma-v2", "--sigma-w2", "--sigma-b2"]),
              st.sampled_from(["-1", "-0.5", "nan", "inf", "x"])),
    st.tuples(st.sampled_from(["--norm", "--attention", "--input", "--gap", "--dtype"]),
              st.text(alphabet="abcxyz", min_size=1, max_size=6)),
    st.tuples(st.just("--rho"), st.sampled_from(["-0.1", "1.5", "nan"])),
    st.tuples(st.just("--heads"), st.sampled_from(["0", "3", "-2"])),
)


@settings(max_examples=40, deadline=None)
@given(_invalid)
def test_random_invalid_configs_exit_2(flag_value) -> None:
    flag, value = flag_value
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["run", "--T", "8", "--d", "8", "--depth", "1", "--samples", "2", flag,
                     value])
    if code == 0:  # a random string can be a valid choice ("x" is not, "post" could be)
        return
    assert code == 2 and err.getvalue().count("\n") == 1 and "Traceback" not in err.getvalue()


def test_python_dash_m_sim_is_sigprop() -> None:
    env = dict(os.environ, SIGPROP_PROGRESS="0")
    a = subprocess.run([sys.executable, "-m", "sim", "predict"], capture_output=True, text=True,
                       env=env, check=True).stdout
    b = subprocess.run([sys.executable, "-m", "sim", "--help"], capture_output=True, text=True,
                       env=env, check=True).stdout
    assert "gap3_stable_rank_limit" in a and "verify" in b


def test_help_is_complete(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = capsys.readouterr().out
    for name in CONFIG_FIELDS:
        assert "--" + name.replace("_", "-") in out


def test_bench_json_rows(capsys, monkeypatch) -> None:
    from sim import bench

    real = bench.run_bench
    monkeypatch.setattr(bench, "run_bench", lambda seconds: real(
        sizes=((8, 8, 1),), dtypes=("float64",), seconds=0.01, impls=("engine", "numpy",
                                                                       "ceiling"),
        repeats=1, ceiling_n=64))
    code, out, _ = _run(capsys, "bench", "--json", "--seconds", "0.01")
    rows = json.loads(out)
    assert code == 0 and {r["impl"] for r in rows} == {"engine", "numpy", "ceiling"}
    assert all(set(r) == {"T", "d", "depth", "dtype", "impl", "samples_per_s", "gflops"}
               for r in rows)
    assert _run(capsys, "bench", "--seconds", "0")[0] == 2


def test_figures_are_written_and_stamped(capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SIGPROP_CACHE_DIR", str(tmp_path / "cache"))
    code, out, _ = _run(capsys, "figures", "gap3_stable_rank", "--profile", "quick", "--out",
                        str(tmp_path / "f"))
    assert code == 0
    written = sorted(p.name for p in (tmp_path / "f").iterdir())
    assert written == ["gap3_stable_rank.pdf", "gap3_stable_rank.png"]
    from sim.claims import get_claim
    from sim.figures import gap3_stable_rank

    fig = gap3_stable_rank(get_claim("GAP-3").run("quick"))  # from the cache
    stamps = [t.get_text() for t in fig.texts]
    assert any("GAP-3" in t and "seed" in t and "samples" in t and "sigprop" in t
               for t in stamps)


def test_closed_pipe_is_quiet() -> None:
    """``sigprop run ... | head -c 1``: no traceback when the reader goes away."""
    producer = subprocess.Popen(
        [sys.executable, "-m", "sim", "run", "--T", "4", "--d", "4", "--depth", "200",
         "--samples", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    producer.stdout.read(1)
    producer.stdout.close()
    err = producer.stderr.read().decode()
    producer.wait(timeout=120)
    assert "Traceback" not in err and "BrokenPipe" not in err
