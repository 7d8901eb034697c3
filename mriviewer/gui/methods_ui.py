"""The methods panel: classical methods, plugins and the model zoo, models opened by the user."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from PyQt6.QtCore import Qt, QTimer
from PyQt6.QtWidgets import QFileDialog

from mriviewer.core.errors import MriViewerError


def card_text(card: Any) -> str:
    """A model card (or settings) as indented JSON for the card view."""
    if isinstance(card, str):
        return card
    try:
        return json.dumps(card, indent=2, sort_keys=True, default=str)
    except TypeError:
        return str(card)


def model_denoiser(card: Any) -> str:
    """A model's data kind from its card (the zoo's summary or a full card): ``2d``, or ``3d`` /
    ``2+1d`` for a cine model."""
    if not isinstance(card, dict):
        return "2d"
    if card.get("denoiser"):
        return str(card["denoiser"])
    arch = card.get("architecture")
    return str(arch.get("denoiser") or "2d") if isinstance(arch, dict) else "2d"


def is_cine_model(card: Any) -> bool:
    """True for a cine (2-D + time) model: it runs on cine files and is refused on 2-D slices."""
    if isinstance(card, dict) and "dynamic" in card:
        return bool(card["dynamic"])
    return model_denoiser(card) != "2d"


class MethodsMixin:
    """Fills the methods panel and opens model files."""

    def populate_methods(self) -> None:
        """Classical methods from the core registry, then every model of the zoo."""
        from mriviewer.core import compare

        for i, name in enumerate(compare.classical_methods()):
            try:
                method = compare.get_method(name)
                settings = method.settings()
                doc = (type(method).__doc__ or "").strip().splitlines()
                summary = (doc[0] if doc else name).replace("``", "")
                text = f"{name}: {summary}\n\nsettings:\n{card_text(settings)}"
            except Exception as exc:  # noqa: BLE001 - show the problem in the card
                text = f"cannot build {name}: {exc}"
            self.methods_panel.add_method(name, name, text, checked=i == 0)
        skipped = compare.plugin_failures()  # plugins that failed to load: say so, run the rest
        if skipped:
            for record in skipped:
                print(f"mriviewer: warning: {record.describe()}", file=sys.stderr)
            more = f" (and {len(skipped) - 1} more: mriviewer methods)" if len(skipped) > 1 else ""
            # once the event loop runs, after the window's own start-up messages ("opened ...")
            QTimer.singleShot(
                0, lambda: self.statusBar().showMessage(skipped[0].describe() + more, 30000)
            )
        if self.methods_panel.list.count():
            self.methods_panel.list.setCurrentRow(0)
        try:
            from mriviewer.core import checkpoints
        except ModuleNotFoundError as exc:
            if exc.name != "mriviewer.core.checkpoints":
                raise
            return
        try:
            models = checkpoints.list_models()
        except Exception as exc:  # noqa: BLE001 - a broken zoo must not stop the app
            self.show_error("Model zoo", f"cannot list models: {exc}")
            return
        for entry in models:
            key = f"model:{entry.get('path') or entry['name']}"
            card = entry.get("card") or {"error": entry.get("error", "no model card")}
            self.model_cards[key] = card
            self.zoo_keys[entry["name"]] = key
            self.methods_panel.add_method(
                key, f"model: {entry['name']}", card_text(card), tooltip=str(entry.get("path", ""))
            )
        self._refresh_methods_enabled()  # cine models are greyed out until a cine file opens

    def open_model_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open model", "", "Model weights (*.safetensors);;All files (*)"
        )
        if path:
            self.open_model(path)

    def open_model(self, path: str | Path) -> bool:
        """Load a model file; it joins the method list (checked) with its card shown."""
        path = str(Path(path).resolve())
        try:
            from mriviewer.core.recon.model_method import load_model_method

            method = load_model_method(path)
        except ModuleNotFoundError as exc:
            self.show_error("Cannot open model", f"{path}: model support is not installed ({exc})")
            return False
        except MriViewerError as exc:
            text = str(exc) if path in str(exc) else f"{path}: {exc}"
            self.show_error("Cannot open model", text)
            return False
        except Exception as exc:  # noqa: BLE001 - incompatible files must not crash the app
            self.show_error(
                "Cannot open model", f"{path}: incompatible model ({type(exc).__name__}: {exc})"
            )
            return False
        card = getattr(method, "card", None)
        card = card.to_dict() if hasattr(card, "to_dict") else (card or method.settings())
        key = f"model:{path}"
        self.model_cards[key] = card
        if path not in self.model_files:
            self.model_files.append(path)
        item = self.methods_panel.add_method(
            key, f"model: {Path(path).stem}", card_text(card), checked=True, tooltip=path
        )
        item.setCheckState(Qt.CheckState.Checked)
        self._refresh_methods_enabled()  # a cine model opened on a 2-D file: listed, greyed out
        if is_cine_model(card) and not self.session.is_cine:
            self.statusBar().showMessage(
                f"{Path(path).stem} is a cine model: it runs on cine files (open one to use it)",
                8000,
            )
        self.methods_panel.select(key)
        return True

    def _refresh_methods_enabled(self) -> None:
        """Enable the methods of the current mode (overridden by the cine mode)."""
