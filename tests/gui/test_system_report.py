"""Help > System report…: the doctor text in a dialog, Copy puts it on the clipboard."""

from __future__ import annotations

from PyQt6.QtCore import Qt
from PyQt6.QtGui import QGuiApplication

from mriviewer import __version__


def _help_action(window, text: str):
    for menu_action in window.menuBar().actions():
        if menu_action.text().replace("&", "") == "Help":
            for action in menu_action.menu().actions():
                if action.text().replace("&", "") == text:
                    return action
    raise AssertionError(f"no Help > {text}")


def test_system_report_dialog_shows_report_and_copies_it(window, qtbot):
    from mriviewer.gui.widgets.system_report import SystemReportDialog

    QGuiApplication.clipboard().setText("before")
    _help_action(window, "System report…").trigger()
    dialogs = [d for d in window.findChildren(SystemReportDialog) if d.isVisible()]
    assert len(dialogs) == 1
    dialog = dialogs[0]
    text = dialog.view.toPlainText()
    assert text == dialog.text
    assert text.splitlines()[0].split() == ["mriviewer:", __version__]
    assert "torch:" in text and "qt platform:" in text and "coil-map cache:" in text
    qtbot.mouseClick(dialog.copy_button, Qt.MouseButton.LeftButton)
    assert QGuiApplication.clipboard().text() == text
    dialog.close()
