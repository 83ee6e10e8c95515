"""The main window's parts: the circles sidebar, the status line and one pane per view."""
