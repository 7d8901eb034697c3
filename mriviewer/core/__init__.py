"""Headless core of mriviewer. Never imports Qt."""
