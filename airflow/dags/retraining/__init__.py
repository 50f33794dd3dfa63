"""Helpers of the retraining DAG: project settings, commands in the project's venv, the API's reload."""
