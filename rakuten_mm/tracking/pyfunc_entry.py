"""The file MLflow logs as the pyfunc model's code ("models from code"): it names the model class.

Loading a model logged this way runs this file instead of unpickling a Python object.
"""

from mlflow.models import set_model

from rakuten_mm.tracking.pyfunc_model import ProductClassifierModel

set_model(ProductClassifierModel())
