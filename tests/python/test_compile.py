"""The custom operator culstm::lstm under torch.compile(fullgraph=True), torch.export and torch.library.opcheck,
on the CPU."""

import pytest

from conftest import import_torch

torch = import_torch()
import culstm.torch  # noqa: E402

pytestmark = pytest.mark.skipif(not hasattr(torch.library, "custom_op"), reason="PyTorch < 2.4: eager only")


class Tagger(torch.nn.Module):
    """A model holding a culstm LSTM between other layers, as users write them."""

    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Linear(6, 5)
        self.lstm = culstm.torch.LSTM(5, 7, num_layers=2, batch_first=True, bidirectional=True, proj_size=3)
        self.head = torch.nn.Linear(6, 4)

    def forward(self, x, h0, c0):
        y, (h, c) = self.lstm(torch.relu(self.embed(x)), (h0, c0))
        return self.head(y), h, c


def inputs():
    torch.manual_seed(0)
    return torch.randn(3, 4, 6), torch.randn(4, 3, 3), torch.randn(4, 3, 7)


def test_compile_fullgraph_matches_eager():
    model = Tagger().eval()
    args = inputs()
    with torch.no_grad():
        eager = model(*args)
        compiled = torch.compile(model, fullgraph=True, backend="eager")(*args)
        inductor = torch.compile(model, fullgraph=True)(*args)
    for got in (compiled, inductor):
        for g, e in zip(got, eager):
            torch.testing.assert_close(g, e)


def test_export_runs_and_matches_eager():
    model = Tagger().eval()
    args = inputs()
    with torch.no_grad():
        exported = torch.export.export(model, args)
        assert any("culstm.lstm" in str(node.target) for node in exported.graph.nodes)
        got = exported.module()(*args)
        eager = model(*args)
    for g, e in zip(got, eager):
        assert torch.equal(g, e)


def test_opcheck():
    lstm = culstm.torch.LSTM(3, 4, num_layers=2, bidirectional=True)
    weights = [getattr(lstm, n).detach() for n in lstm._flat_weights_names]
    x = torch.randn(5, 2, 3)
    lengths = torch.tensor([5, 2], dtype=torch.int32)
    h0, c0 = torch.randn(4, 2, 4), torch.randn(4, 2, 4)
    for args in ((x, None, None, None, weights, lstm._config), (x, lengths, h0, c0, weights, lstm._config)):
        torch.library.opcheck(culstm.torch.lstm_op, args)


def test_eager_fallback_without_custom_op(monkeypatch):
    """On a PyTorch without torch.library.custom_op the module calls the implementation directly."""
    lstm = culstm.torch.LSTM(3, 4)
    x = torch.randn(2, 1, 3)
    with torch.no_grad():
        want = lstm(x)[0]
        monkeypatch.setattr(culstm.torch, "lstm_op", culstm.torch._lstm_impl)
        got = lstm(x)[0]
    assert torch.equal(got, want)
