"""Full screens (identity, unlock, the main window) and the modal dialogs of the client."""
