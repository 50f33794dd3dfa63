"""stages/evaluate.py: the served classifier is loaded again only when it differs from the scored one."""

from types import SimpleNamespace

import stages.evaluate as evaluate


def test_served_classifier_reuses_every_member_when_the_fusion_uses_them_all(monkeypatch):
    loaded = []
    monkeypatch.setattr(evaluate, "ProductClassifier", lambda models: loaded.append(models) or "served")
    every_member = SimpleNamespace(members=["text", "image", "baseline"],
                                   fusion={"method": "stacking", "members": ["baseline", "text", "image"]})
    assert evaluate.served_classifier(every_member, "models") is every_member
    assert loaded == []
    every_member.fusion = {"method": "member", "member": "text"}
    assert evaluate.served_classifier(every_member, "models") == "served"
    assert loaded == ["models"]
