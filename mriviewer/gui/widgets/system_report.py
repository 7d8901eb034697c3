"""Help > System report…: the ``mriviewer doctor`` text in a dialog with a Copy button."""

from __future__ import annotations

from PyQt6.QtCore import Qt
from PyQt6.QtGui import QFontDatabase, QGuiApplication
from PyQt6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)


class SystemReportDialog(QDialog):
    """Shows :func:`mriviewer.commands.doctor.format_report` (read-only, monospace); Copy puts
    the whole text on the clipboard for a bug report."""

    def __init__(self, parent: QWidget | None = None, text: str | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("systemReportDialog")
        self.setWindowTitle("System report")
        if text is None:
            from mriviewer.commands.doctor import collect_report, format_report

            text = format_report(collect_report())
        self.text = text
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Paste this into a bug report (also: mriviewer doctor --json)."))
        self.view = QPlainTextEdit(text)
        self.view.setReadOnly(True)
        self.view.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.view.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        layout.addWidget(self.view)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.copy_button = QPushButton("&Copy")
        self.copy_button.setObjectName("copyReportButton")
        buttons.addButton(self.copy_button, QDialogButtonBox.ButtonRole.ActionRole)
        self.copy_button.clicked.connect(self.copy)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.resize(760, 520)

    def copy(self) -> None:
        """Put the report on the clipboard."""
        QGuiApplication.clipboard().setText(self.text)
        self.copy_button.setText("Copied")


def show_system_report(parent: QWidget | None = None) -> SystemReportDialog:
    """Open the (non-modal) System report dialog and return it."""
    dialog = SystemReportDialog(parent)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.show()
    return dialog
