#!/usr/bin/env python3
"""Export a PyTorch nn.LSTM to a culstm model file (safetensors with nn.LSTM's state_dict names + culstm.spec).

A bare `safetensors.torch.save_file(lstm.state_dict(), path)` already loads in culstm; this script also records what
the tensors cannot tell (batch_first -> "layout"), finds the LSTM inside a larger model, and strips its prefix.

usage: export_pytorch.py CHECKPOINT OUTPUT.safetensors [--module PATH] [--batch-first] [--trust-pickle]
  CHECKPOINT      a file written by torch.save: a state_dict (or a dict holding one under "state_dict" or "model"),
                  or a whole nn.Module (loading a pickled module runs code from the file: needs --trust-pickle)
  --module PATH   the nn.LSTM's path: a submodule path ("encoder.lstm") for a module, the key prefix
                  ("encoder.lstm", with or without the trailing dot) for a state_dict; default: the only nn.LSTM /
                  the only prefix with LSTM tensors
  --batch-first   for a state_dict (which does not record it): the model runs with batch_first=True
  --trust-pickle  allow torch.load(weights_only=False)

Needs: pip install torch safetensors
"""
import argparse
import json
import re
import sys

LSTM_NAME = re.compile(r"^(weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)_l\d+(_reverse)?$")


def fail(message):
    print(f"export_pytorch: error: {message}", file=sys.stderr)
    sys.exit(1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("output")
    parser.add_argument("--module", default="")
    parser.add_argument("--batch-first", action="store_true")
    parser.add_argument("--trust-pickle", action="store_true")
    args = parser.parse_args()

    import torch
    from safetensors.torch import save_file

    try:
        obj = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
    except Exception as e:  # a pickled module is refused by the weights-only unpickler
        if not args.trust_pickle:
            fail(f"{args.checkpoint} is not a plain state_dict ({type(e).__name__}: {e}); if it is a whole module "
                 "you trust, pass --trust-pickle")
        try:
            obj = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
        except (AttributeError, ModuleNotFoundError) as e:  # the module's class is not importable here
            fail(f"cannot unpickle {args.checkpoint}: {e}; run this script where the model's classes can be "
                 "imported (PYTHONPATH), or save and export its state_dict instead")

    batch_first = args.batch_first
    if isinstance(obj, torch.nn.Module):
        if args.module:
            lstm = obj.get_submodule(args.module)
        else:
            found = [(n, m) for n, m in obj.named_modules() if isinstance(m, torch.nn.LSTM)]
            if len(found) != 1:
                fail(f"the module has {len(found)} nn.LSTM submodules ({', '.join(repr(n) for n, _ in found)}); "
                     "choose one with --module")
            lstm = found[0][1]
        if not isinstance(lstm, torch.nn.LSTM):
            fail(f"{args.module!r} is a {type(lstm).__name__}, not an nn.LSTM")
        state = lstm.state_dict()
        batch_first = bool(lstm.batch_first)
    else:
        if isinstance(obj, dict) and not any(torch.is_tensor(v) for v in obj.values()):
            for key in ("state_dict", "model"):
                if isinstance(obj.get(key), dict):
                    obj = obj[key]
                    break
        if not isinstance(obj, dict):
            fail(f"{args.checkpoint}: expected a state_dict or an nn.Module, got {type(obj).__name__}")
        prefixes = sorted({k[: -len("weight_ih_l0")] for k in obj if k.endswith("weight_ih_l0")})
        if args.module:
            prefix = args.module if args.module.endswith(".") else args.module + "."
        elif len(prefixes) == 1:
            prefix = prefixes[0]
        else:
            fail(f"the state_dict has {len(prefixes)} LSTMs (prefixes {prefixes}); choose one with --module")
        state = {k[len(prefix):]: v for k, v in obj.items() if k.startswith(prefix) and LSTM_NAME.match(k[len(prefix):])}
        if not state:
            fail(f"no nn.LSTM tensors (weight_ih_l0, ...) under prefix {prefix!r}; prefixes with LSTMs: {prefixes}")

    tensors = {name: t.detach().to("cpu").contiguous().clone() for name, t in state.items()}
    for name, t in tensors.items():
        if not LSTM_NAME.match(name):
            fail(f"unexpected tensor {name!r} in the LSTM's state_dict")
        if not t.is_floating_point():
            fail(f"tensor {name!r} has dtype {t.dtype}; expected floating point")
    spec = {"layout": "batch_major" if batch_first else "seq_major"}
    save_file(tensors, args.output, metadata={"culstm.spec": json.dumps(spec)})
    layers = 1 + max(int(re.search(r"_l(\d+)", n).group(1)) for n in tensors)
    print(f"wrote {args.output}: {len(tensors)} tensors, {layers} layer(s), culstm.spec {json.dumps(spec)}")


if __name__ == "__main__":
    main()
