"""The human-readable model card (``README.md`` beside the models), rendered from the JSON cards."""

from __future__ import annotations

from collections.abc import Sequence

from edgecascade.shared.runtime.card import ModelCard


def _extra(card: ModelCard, key: str) -> str:
    return str((card.metrics.model_extra or {}).get(key, ""))


def render_markdown(title: str, cards: Sequence[ModelCard], files: Sequence[str]) -> str:
    rows: list[tuple[str, list[str]]] = [
        ("file", [f"`{f}`" for f in files]),
        ("version", [c.version for c in cards]),
        ("parameters", [_extra(c, "parameters") for c in cards]),
        ("size (bytes)", [str(c.size_bytes) for c in cards]),
        ("top-1 accuracy (this file, LiteRT)", [str(c.metrics.accuracy) for c in cards]),
        ("accuracy measured on", [str(c.metrics.eval_dataset) for c in cards]),
        (
            "top-1 accuracy in float (PyTorch)",
            [_extra(c, "float_accuracy") for c in cards],
        ),
        ("invoke latency p50 (ms, 2 threads)", [str(c.metrics.latency_ms_p50) for c in cards]),
        ("top-1 agreement int8 vs fp32", [_extra(c, "fp32_int8_top1_agreement") for c in cards]),
        (
            "mean top-1 probability fp32 / int8",
            [
                f"{_extra(c, 'fp32_mean_top1_probability')[:5]} / "
                f"{_extra(c, 'int8_mean_top1_probability')[:5]}"
                for c in cards
            ],
        ),
        (
            "top-1 accuracy under DEFAULT_DRIFT (same split, default_rng(0))",
            [_extra(c, "accuracy_default_drift") for c in cards],
        ),
        ("trained with augmentation", [_extra(c, "augmentation") for c in cards]),
        ("sha256", [f"`{c.sha256}`" for c in cards]),
    ]
    commands = {c.build_command for c in cards}
    if len(commands) > 1:  # a role built with options of its own: each column says how
        rows.insert(0, ("build command", [f"`{c.build_command}`" for c in cards]))
    rows = [
        (name, values) for name, values in rows if any(v not in ("", "None", " / ") for v in values)
    ]
    header = "| | " + " | ".join(f.removesuffix(".tflite") for f in files) + " |\n"
    header += "|---|" + "---|" * len(cards) + "\n"
    body = "".join(f"| {name} | " + " | ".join(values) + " |\n" for name, values in rows)
    first = cards[0]
    built_by = (
        f"Built by `{first.build_command}`; every figure below was measured by that command"
        if len(commands) == 1
        else "Built by the command in each column's build command row; every figure below was "
        "measured by that command"
    )
    return (
        f"# {title}\n\n"
        f"{built_by} and is copied from the JSON card next to each model.\n\n"
        f"- Source: {first.source}\n- Licence: {first.license}\n"
        + (
            f"- Labels (output index order): {', '.join(first.labels)}\n"
            if len(first.labels) <= 20
            else f"- Labels: {len(first.labels)} classes, in the JSON cards\n"
        )
        + f"- Input: raw 0..255 pixels ({first.preprocess.color}, {first.preprocess.resize}); "
        "scaling happens inside the graph.\n\n" + header + body
    )
