"""``mriviewer methods [--json]``: the reconstruction methods this installation knows.

One row per method: its name (what ``recon --method`` / ``eval --methods`` / the app take), the
package it comes from (``mriviewer`` for the built-in ones, else the plugin's distribution, see
README "Plugins"), its kind (``built-in``, ``method class``, ``torch module``, ``factory``) and
its default settings. Plugins that were skipped (import failed, contract broken, name taken) are
listed after the table with the reason. Trained models are ``model:NAME|PATH`` (``mriviewer
models``).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from mriviewer.core.runs import jsonable


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "methods",
        help="list reconstruction methods (built-in and plugins) with their default settings",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=run)


def collect() -> dict[str, Any]:
    """``{"methods": [{name, source, kind, settings[, error]}], "failures": [{name, package,
    value, kind, error}]}``; a method that cannot be built with its defaults has ``error``."""
    from mriviewer.core import compare

    loaded = {r.name: r for r in compare.load_plugins() if not r.error}
    methods = []
    for name in compare.classical_methods():
        record = loaded.get(name)
        entry: dict[str, Any] = {
            "name": name,
            "source": record.package if record else "mriviewer",
            "kind": record.kind if record else "built-in",
            "settings": None,
        }
        try:
            entry["settings"] = jsonable(compare.get_method(name).settings())
        except Exception as exc:  # noqa: BLE001 - a plugin's fault is listed, not raised
            entry["error"] = f"cannot be built with its default settings: {exc}"
        methods.append(entry)
    failures = [r.to_dict() for r in compare.plugin_failures()]
    return {"methods": methods, "failures": failures}


def run(args: argparse.Namespace) -> int:
    result = collect()
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    rows = [("name", "source", "kind", "settings")]
    for m in result["methods"]:
        settings = json.dumps(m["settings"]) if m.get("settings") is not None else m["error"]
        rows.append((m["name"], m["source"], m["kind"], settings))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for i, row in enumerate(rows):
        print("  ".join(c.ljust(w) for c, w in zip(row[:3], widths, strict=True)) + "  " + row[3])
        if i == 0:
            print("  ".join("-" * w for w in widths) + "  " + "-" * 8)
    print("model:NAME | model:PATH  trained models (see `mriviewer models`)")
    if result["failures"]:
        print("\nskipped plugins:")
        for f in result["failures"]:
            print(f"  {f['name']} (package {f['package']}, {f['value']}): {f['error']}")
    return 0
