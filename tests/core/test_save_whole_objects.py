"""``torch.save(model, path)`` / ``torch.save(optimizer, path)``: PyTorch pickles the whole
object; minipool's files hold data only, so it refuses -- and now names the way (save the
``state_dict()`` and load it into a new object), where the message listed the storable types
only."""
import pytest

import minipool as mp


@pytest.mark.parametrize("make", [lambda m: m, lambda m: mp.optim.Adam(m.parameters()),
                                  lambda m: mp.optim.lr_scheduler.StepLR(mp.optim.SGD(m.parameters(), 0.1), 2)])
def test_saving_a_whole_model_or_optimizer_names_state_dict(tmp_path, make):
    obj = make(mp.nn.Sequential(mp.nn.Linear(2, 2)))
    name = type(obj).__name__
    with pytest.raises(TypeError, match=rf"cannot store the object of type {name} .*save its "
                                        rf"{name}\.state_dict\(\) instead"):
        mp.save(obj, tmp_path / "model.pt")
    with pytest.raises(TypeError, match=rf"cannot store model of type {name} .*state_dict"):
        mp.save({"model": obj}, tmp_path / "checkpoint.pt")
    assert not (tmp_path / "model.pt").exists()  # nothing half-written
