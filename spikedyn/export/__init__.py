"""Export to NIR and deployment to Lava."""
