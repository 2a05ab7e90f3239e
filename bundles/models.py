"""Models arrive with the bundles issue; the app exists so the layout is complete."""
