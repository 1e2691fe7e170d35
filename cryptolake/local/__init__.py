"""The embedded default stack (`cryptolake local ...`)."""
