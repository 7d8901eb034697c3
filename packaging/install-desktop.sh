#!/usr/bin/env bash
# Install (or with --uninstall remove) the mriviewer desktop entry and icons for the current user,
# following the freedesktop layout under ${XDG_DATA_HOME:-~/.local/share}.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
icons="$here/../resources/icons"
data_home="${XDG_DATA_HOME:-$HOME/.local/share}"
apps="$data_home/applications"
hicolor="$data_home/icons/hicolor"

if [[ "${1:-}" == "--uninstall" ]]; then
  rm -f "$apps/mriviewer.desktop" "$hicolor/scalable/apps/mriviewer.svg"
  for png in "$icons"/mriviewer-*.png; do
    size="$(basename "$png" .png)"; size="${size#mriviewer-}"
    rm -f "$hicolor/${size}x${size}/apps/mriviewer.png"
  done
  echo "removed mriviewer desktop entry and icons from $data_home"
  exit 0
fi

install -Dm644 "$here/mriviewer.desktop" "$apps/mriviewer.desktop"
install -Dm644 "$icons/mriviewer.svg" "$hicolor/scalable/apps/mriviewer.svg"
for png in "$icons"/mriviewer-*.png; do
  size="$(basename "$png" .png)"; size="${size#mriviewer-}"
  install -Dm644 "$png" "$hicolor/${size}x${size}/apps/mriviewer.png"
done
command -v update-desktop-database >/dev/null && update-desktop-database -q "$apps" || true
command -v gtk-update-icon-cache >/dev/null && gtk-update-icon-cache -q -t "$hicolor" || true
echo "installed mriviewer desktop entry in $apps and icons in $hicolor"
