"""The prediction API: FastAPI over the models that `dvc repro` put in models/."""
