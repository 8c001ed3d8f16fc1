"""Export-friendly building blocks shared by families."""
