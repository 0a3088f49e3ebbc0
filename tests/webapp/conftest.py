"""Shared fixtures of the web app tests (matcher and terminal keep their own in their folders)."""
