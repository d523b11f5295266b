"""The ``sigprop`` command line (also ``python -m sim``).

Subcommands: ``run``, ``sweep``, ``verify``, ``derive``, ``predict``, ``figures``, ``bench``.
Config flags are the ``Config`` field names with dashes (``--sigma-v2``). Bad input prints one
line on stderr and exits 2.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import fields
from typing import Any

import numpy as np

from sim.config import (
    ACTIVATIONS,
    ATTENTIONS,
    DTYPES,
    GAPS,
    INPUTS,
    NORMS,
    QKS,
    VALUES,
    Config,
)
from sim.profiles import DEFAULT_PROFILE, PROFILES

EXIT_USAGE = 2
_CHOICES = {"norm": NORMS, "attention": ATTENTIONS, "gap": GAPS, "input": INPUTS,
            "dtype": DTYPES, "activation": ACTIVATIONS, "value": VALUES, "qk": QKS}


class UsageError(Exception):
    """Bad input from the user: reported on one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, no usage block
        raise UsageError(message)


def _parse_vector(text: str) -> tuple[float, ...]:
    """A vector flag: comma-separated reals (``--steer-u 1,0,0``)."""
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of reals"
                                         ) from None


def _field_type(name: str, annotation: Any) -> Any:
    text = str(annotation)
    if "tuple" in text:
        return _parse_vector
    if "bool" in text:
        return bool
    if "int" in text:
        return int
    if "float" in text:
        return float
    return str


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not a boolean (use true or false)")


def _add_config_flags(parser: argparse.ArgumentParser, lists: bool = False) -> None:
    group = parser.add_argument_group(
        "config" + (" (comma-separated values make a grid)" if lists else ""))
    defaults = Config()
    for f in fields(Config):
        kind = _field_type(f.name, f.type)
        flag = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        helptext = f"default {default!r}"
        if f.name in _CHOICES:
            helptext += f"; one of {', '.join(_CHOICES[f.name])}"
        if kind is bool:
            helptext += "; true or false"
        if kind is _parse_vector:
            helptext += "; comma-separated reals (one value, also in a sweep)"
        group.add_argument(flag, dest=f.name, metavar=f.name.upper() if lists else None,
                           type=str if lists else (_parse_bool if kind is bool else kind),
                           default=None, help=helptext)


def _config_values(args: argparse.Namespace) -> dict[str, Any]:
    return {f.name: getattr(args, f.name) for f in fields(Config)
            if getattr(args, f.name) is not None}


def _grid(args: argparse.Namespace) -> list[Config]:
    axes: dict[str, list[Any]] = {}
    for f in fields(Config):
        text = getattr(args, f.name)
        if text is None:
            continue
        kind = _field_type(f.name, f.type)
        convert = _parse_bool if kind is bool else kind
        try:
            if kind is _parse_vector:
                axes[f.name] = [kind(text)]
                continue
            axes[f.name] = [convert(v) for v in text.split(",")]
        except (ValueError, argparse.ArgumentTypeError) as exc:
            raise UsageError(f"--{f.name.replace('_', '-')}: bad value {text!r} ({exc})") from exc
    names = list(axes)
    return [Config(**dict(zip(names, combo, strict=True)))
            for combo in itertools.product(*(axes[n] for n in names))]


KIND_NAMES = ("forward", "order", "attention", "rows", "spectra", "gradient", "alignment",
              "heads", "queries", "ablation")
KIND_HELP = ("forward (every observable at every layer), order (forward without the rank "
             "observables; faster), attention (layer-1 attention stable ranks and top singular "
             "values), rows (layer-1 softmax row entropy, ipr and overlap), spectra (layer-1 "
             "eigenvalues and singular values, one row each), gradient (exact "
             "||dX_L/dW_V^l||_F^2 of an attention-only stack with input-independent "
             "attention), alignment (per layer, the tokens' alignment with the top "
             "eigen-directions of the value product F, of I + F, of P(I + F) and with the "
             "steering direction), heads (per layer and head: sink mass, output norm, "
             "contribution weights, consensus distance), queries (layer 1, head 0, per query "
             "token), ablation (rank correlations of contribution weights, attention and "
             "value-weighted attention with the effect of deleting a token); default forward")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="sigprop", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="simulate one config; per-layer estimates (mean, se)")
    _add_config_flags(run)
    run.add_argument("--samples", type=int, default=64, help="Monte-Carlo samples (default 64)")
    run.add_argument("--seed", type=int, default=0, help="run seed (default 0)")
    run.add_argument("--kind", choices=KIND_NAMES, default="forward",
                     help="what to measure: " + KIND_HELP)
    run.add_argument("--json", action="store_true", help="print one JSON object")

    sw = sub.add_parser("sweep", help="simulate a grid of configs through the cache")
    _add_config_flags(sw, lists=True)
    sw.add_argument("--samples", type=int, default=64)
    sw.add_argument("--seed", type=int, default=0)
    sw.add_argument("--kind", choices=KIND_NAMES, default="forward",
                    help="what to measure: " + KIND_HELP)
    sw.add_argument("--executor", choices=("serial", "processes"), default=None,
                    help="where points run locally (default: local processes)")
    sw.add_argument("--scheduler", metavar="ADDRESS", default=None,
                    help="run points on the dask.distributed scheduler at ADDRESS (default: "
                         "$SIGPROP_SCHEDULER if set, else local); results are cached here")
    sw.add_argument("--json", action="store_true", help="print a JSON list of results")

    ver = sub.add_parser("verify", help="run claims and print their verdicts")
    ver.add_argument("claims", nargs="*", metavar="CLAIM", help="claim ids (default: all)")
    ver.add_argument("--profile", choices=PROFILES, default=DEFAULT_PROFILE)
    ver.add_argument("--executor", choices=("serial", "processes"), default=None,
                     help="where simulation points run locally (default: serial)")
    ver.add_argument("--scheduler", metavar="ADDRESS", default=None,
                     help="run simulation points on the dask.distributed scheduler at ADDRESS "
                          "(default: $SIGPROP_SCHEDULER if set, else local)")
    ver.add_argument("--json", action="store_true", help="print a JSON list of claim results")

    der = sub.add_parser("derive", help="rerun every derivation and rewrite theory/_generated/")
    der.add_argument("--check", action="store_true",
                     help="do not write; exit 1 if theory/_generated/ differs from a fresh "
                          "derivation")

    pre = sub.add_parser(
        "predict", help="evaluate a registered prediction",
        description="Evaluate a registered prediction, e.g. `sigprop predict ipr --T 512 --d 512 "
                    "--beta 2 --json`. Parameters are given as --KEY VALUE, --KEY=VALUE or "
                    "KEY=VALUE; `sigprop predict --list` names the predictions and their "
                    "parameters.")
    pre.add_argument("name", nargs="?", help="prediction name (omit, or --list, to list them)")
    pre.add_argument("params", nargs="*", metavar="KEY=VALUE", help="parameters, e.g. T=64")
    pre.add_argument("--list", action="store_true", help="list the predictions and exit")
    pre.add_argument("--json", action="store_true")

    fig = sub.add_parser("figures", help="write every figure to figures/ (PNG and PDF)")
    fig.add_argument("names", nargs="*", metavar="NAME",
                     help="figure names (default: all; `sigprop figures --list` names them)")
    fig.add_argument("--list", action="store_true", help="list the figure names and exit")
    fig.add_argument("--profile", choices=PROFILES, default=DEFAULT_PROFILE)
    fig.add_argument("--out", default="figures", help="output directory (default figures/)")

    ben = sub.add_parser("bench", help="time the engine against NumPy, PyTorch and the "
                                       "matrix-multiply ceiling")
    ben.add_argument("--seconds", type=float, default=1.0,
                     help="target seconds per measurement (default 1)")
    ben.add_argument("--json", action="store_true", help="print a JSON list of rows")
    return parser


# ----------------------------------------------------------------------------- commands

def _cmd_run(args: argparse.Namespace) -> int:
    from sim.montecarlo import simulate
    from sim.report import run_table

    config = Config(**_config_values(args))
    result = simulate(config, args.samples, args.seed, args.kind)
    print(result.to_json() if args.json else run_table(result))
    return 0


@contextlib.contextmanager
def _executor(args: argparse.Namespace, default: str) -> Iterator[Any]:
    """``--executor`` (or ``default``), or a Dask cluster from ``--scheduler`` /
    ``$SIGPROP_SCHEDULER``."""
    from sim.cluster import cluster_executor, scheduler_address

    address = scheduler_address(args.scheduler)
    if address is None:
        yield args.executor or default
        return
    if args.executor is not None:
        raise UsageError(f"--executor {args.executor} and a scheduler ({address}) exclude each "
                         "other; give one")
    with cluster_executor(address) as executor:
        yield executor


def _cmd_sweep(args: argparse.Namespace) -> int:
    from sim.report import sweep_table
    from sim.sweep import Point, sweep

    configs = _grid(args)
    points = [Point(c, args.samples, args.seed, args.kind) for c in configs]
    with _executor(args, "processes") as executor:
        results = sweep(points, executor=executor)
    if args.json:
        print(json.dumps([r.to_dict() for r in results]))
    else:
        print(sweep_table(results))
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from sim.claims import get_claim, verify
    from sim.report import verdict_table

    for claim_id in args.claims:
        get_claim(claim_id)  # unknown ids fail before any work
    with _executor(args, "serial") as executor:
        results = verify(args.claims, args.profile, executor=executor)
    if args.json:
        print(json.dumps([r.to_dict() for r in results]))
    else:
        print(verdict_table(results))
    return 0


def _cmd_derive(args: argparse.Namespace) -> int:
    from theory import derive

    if args.check:
        stale = derive.stale_modules()
        for path in stale:
            print(f"{path} differs from a fresh derivation; run `sigprop derive`",
                  file=sys.stderr)
        return 1 if stale else 0
    for module, functions in derive.derive_all().items():
        for name, expr, args_ in functions:
            params = ", ".join(str(a) for a in args_)
            print(f"{module}.{name}({params}) = {expr}")
    for path in derive.write_all():
        print(f"wrote {path}")
    return 0


def _key_values(items: Sequence[str]) -> list[str]:
    """``KEY=VALUE`` items from ``KEY=VALUE``, ``--KEY=VALUE`` and ``--KEY VALUE`` forms."""
    out: list[str] = []
    it = iter(items)
    for item in it:
        if not item.startswith("--"):
            out.append(item)
        elif "=" in item:
            out.append(item[2:])
        else:
            value = next(it, None)
            if value is None or value.startswith("--"):
                raise UsageError(f"parameter {item!r} needs a value (--KEY VALUE)")
            out.append(f"{item[2:]}={value}")
    return out


def _cmd_predict(args: argparse.Namespace) -> int:
    from theory import predictions

    if args.list or not args.name:
        for name, p in sorted(predictions.all_predictions().items()):
            print(f"{name:34s} {p.claim:6s} ({', '.join(p.params)}): {p.description}")
        return 0
    prediction = predictions.get(args.name)
    values: dict[str, float] = {}
    for item in _key_values(args.params):
        key, sep, text = item.partition("=")
        if not sep:
            raise UsageError(f"parameter {item!r} must look like KEY=VALUE or --KEY VALUE")
        try:
            values[key.replace("-", "_")] = float(text)
        except ValueError:  # categorical parameters such as norm=post
            values[key.replace("-", "_")] = text
    if "T" in values:
        if not values["T"].is_integer() or values["T"] < 2:
            raise UsageError(f"parameter T: {values['T']!r} must be an integer >= 2")
        values["T"] = int(values["T"])
    for key in ("d", "d_k", "depth"):  # sizes print as integers
        if isinstance(values.get(key), float) and values[key].is_integer():
            values[key] = int(values[key])
    raw = np.asarray(prediction(**values), dtype=float)
    value = raw.tolist() if raw.ndim else float(raw)
    if args.json:
        print(json.dumps({"name": prediction.name, "claim": prediction.claim,
                          "params": values, "value": value}))
    else:
        print(value)
    return 0


def _cmd_figures(args: argparse.Namespace) -> int:
    from sim.figures import FIGURES, write_all

    if args.list:
        for name, (claim_id, _) in FIGURES.items():
            print(f"{name}  ({claim_id})")
        return 0
    unknown = [n for n in args.names if n not in FIGURES]
    if unknown:
        raise UsageError(f"unknown figure {unknown[0]!r}; known: {', '.join(FIGURES)}")
    for path in write_all(args.profile, args.out, args.names or None):
        print(f"wrote {path}")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from sim.bench import format_table, run_bench

    if not args.seconds > 0:
        raise UsageError(f"--seconds: {args.seconds!r} must be positive")
    rows = run_bench(seconds=args.seconds)
    print(json.dumps(rows) if args.json else format_table(rows))
    return 0


COMMANDS = {"run": _cmd_run, "sweep": _cmd_sweep, "verify": _cmd_verify,
            "derive": _cmd_derive, "predict": _cmd_predict, "figures": _cmd_figures,
            "bench": _cmd_bench}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``sigprop``; returns the exit status."""
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if extra and getattr(args, "command", None) == "predict":
            args.params = list(args.params) + extra  # --KEY VALUE parameters
        elif extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        for name in ("samples", "seed"):
            value = getattr(args, name, None)
            if value is not None and value < (1 if name == "samples" else 0):
                raise UsageError(f"--{name}: {value!r} must be >= {1 if name == 'samples' else 0}")
        return COMMANDS[args.command](args)
    except (UsageError, ValueError) as exc:
        print(f"sigprop: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("sigprop: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader (e.g. `| head`) went away: stop quietly, as Unix tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
