"""Models arrive with the channels issue; the app exists so the layout is complete."""
