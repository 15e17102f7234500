#!/usr/bin/env python3
"""Export a MindSpore nn.LSTM from a checkpoint (.ckpt) to a culstm model file.

MindSpore 2.x's nn.LSTM (mindspore/nn/layer/rnns.py) names its parameters as PyTorch does -- weight_ih_l{k}[_reverse]
[4H, I], weight_hh_l{k}[_reverse] [4H, H], bias_ih_l{k}[_reverse] [4H], bias_hh_l{k}[_reverse] [4H], gates i, f, g, o
-- under the cell's path in the network ("net.lstm.weight_ih_l0"). This script copies those tensors (prefix
stripped, f32) and records batch_first as culstm.spec "layout"; culstm reads the file with --naming mindspore (or
auto/pytorch: the layouts are the same). Optimizer state in the checkpoint ("moment1.net.lstm...") is skipped by the
prefix. Older MindSpore versions' single packed "weight" parameter is not supported.

usage: export_mindspore.py CHECKPOINT.ckpt OUTPUT.safetensors [--prefix net.lstm.] [--batch-first]
  --prefix       the LSTM cell's parameter prefix (default: the only prefix with a weight_ih_l0)
  --batch-first  the network runs the LSTM with batch_first=True (a checkpoint does not record it)

Needs: pip install mindspore safetensors numpy
"""
import argparse
import json
import re
import sys

LSTM_NAME = re.compile(r"^(weight_ih|weight_hh|bias_ih|bias_hh)_l\d+(_reverse)?$")


def fail(message):
    print(f"export_mindspore: error: {message}", file=sys.stderr)
    sys.exit(1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("output")
    parser.add_argument("--prefix", default=None)
    parser.add_argument("--batch-first", action="store_true")
    args = parser.parse_args()

    import mindspore
    import numpy as np
    from safetensors.numpy import save_file

    params = mindspore.load_checkpoint(args.checkpoint)  # {name: Parameter}
    prefixes = sorted({n[: -len("weight_ih_l0")] for n in params if n.endswith("weight_ih_l0")})
    prefixes = [p for p in prefixes if not p.startswith(("moment1.", "moment2.", "accum.", "moments."))] or prefixes
    if args.prefix is not None:
        prefix = args.prefix
    elif len(prefixes) == 1:
        prefix = prefixes[0]
    else:
        fail(f"{args.checkpoint}: {len(prefixes)} candidate LSTMs (prefixes {prefixes}); choose one with --prefix")
    tensors = {}
    for name, param in params.items():
        if not name.startswith(prefix):
            continue
        short = name[len(prefix):]
        if LSTM_NAME.match(short):
            tensors[short] = np.ascontiguousarray(param.asnumpy().astype(np.float32))
    if not tensors:
        if prefix + "weight" in params:
            fail(f"{prefix}weight is the packed weight of an older MindSpore nn.LSTM; culstm needs MindSpore 2.x's "
                 "per-layer parameters")
        fail(f"no nn.LSTM parameters (weight_ih_l0, ...) under prefix {prefix!r}; candidates: {prefixes}")
    spec = {"layout": "batch_major" if args.batch_first else "seq_major"}
    save_file(tensors, args.output, metadata={"culstm.spec": json.dumps(spec)})
    layers = 1 + max(int(re.search(r"_l(\d+)", n).group(1)) for n in tensors)
    print(f"wrote {args.output}: {len(tensors)} tensors, {layers} layer(s) from prefix {prefix!r}, "
          f"culstm.spec {json.dumps(spec)}")


if __name__ == "__main__":
    main()
