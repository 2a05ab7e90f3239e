"""Models arrive with the reconciliation issue; the app exists so the layout is complete."""
