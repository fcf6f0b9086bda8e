"""``edgecascade models``: build the model zoo and evaluate any TFLite classifier."""

from __future__ import annotations

import argparse

from shared.cli import SubParsers


def add_parser(subparsers: SubParsers[argparse.ArgumentParser]) -> None:
    from modelzoo.cli import add_build_parser
    from shared.runtime.evaluate import add_eval_parser

    parser = subparsers.add_parser(
        "models",
        help="build model pairs and evaluate models",
        description="Build the model zoo (build) and measure any TFLite classifier (eval).",
    )
    models = parser.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    add_build_parser(models)
    add_eval_parser(models)
