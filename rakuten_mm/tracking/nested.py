"""Nested metric and params trees as one level of dotted keys."""


def flatten(tree: dict, prefix: str = "") -> dict:
    """Nested dicts as one level with dotted keys ({"a": {"b": 1}} -> {"a.b": 1})."""
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat
