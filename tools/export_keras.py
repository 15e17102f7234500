#!/usr/bin/env python3
"""Export the LSTM layers of a Keras model to a safetensors file culstm reads with `--naming keras`.

The tensors are named by Keras's weight paths as a freshly built Keras 3 model names them, relative to the model:
`lstm/lstm_cell/kernel`, `lstm_1/lstm_cell/recurrent_kernel`, `bidirectional/forward_lstm/lstm_cell/bias`,
`bidirectional/backward_lstm/lstm_cell/kernel` (layer names are the model's), and keep Keras's layout (kernel [I, 4u], recurrent_kernel [u, 4u], bias [4u], gates i, f, c, o). The metadata records what the
weights cannot tell (docs/formats.md):
  culstm.layers  JSON list of the exported layers' paths, in stack order (culstm layer 0 first)
  culstm.keras   {"keras_version", "activation", "recurrent_activation", "go_backwards", "merge_mode", "time_major"}
The version matters: hard_sigmoid is clip(0.2x + 0.5) in Keras 2 and clip(x/6 + 0.5) in Keras 3.

culstm runs a stack of layers that agree on units-independent settings (activations, bias, direction), so the
script refuses layers that differ; export such a model's stacks separately with --layers.

usage: export_keras.py MODEL OUTPUT.safetensors [--layers NAME[,NAME...]] [--tf-keras]
  MODEL     a .keras or .h5 file keras.models.load_model reads
  --layers  names of the LSTM / Bidirectional(LSTM) layers to export, in stack order (default: all, model order)
  --tf-keras  use the legacy tf_keras package (Keras 2 under TensorFlow >= 2.16)

Needs: pip install keras safetensors numpy, plus a Keras backend (jax, tensorflow or torch).
"""
import argparse
import json
import sys


def fail(message):
    print(f"export_keras: error: {message}", file=sys.stderr)
    sys.exit(1)


def leaf_name(variable):
    """kernel, recurrent_kernel or bias: the last component of the variable's name, without tf.keras's ':0'."""
    return variable.name.split(":")[0].split("/")[-1]


def all_layers(model):
    """Every layer of the model in model order, descending into nested models."""
    out = []
    for layer in model.layers:
        if hasattr(layer, "layers") and not hasattr(layer, "forward_layer"):
            out.extend(all_layers(layer))
        else:
            out.append(layer)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("output")
    parser.add_argument("--layers", default="", help="comma-separated layer names, in stack order")
    parser.add_argument("--tf-keras", action="store_true", help="import tf_keras instead of keras")
    args = parser.parse_args()

    if args.tf_keras:
        import tf_keras as keras
    else:
        import keras
    import numpy as np
    from safetensors.numpy import save_file

    model = keras.models.load_model(args.model, compile=False)
    LSTM, Bidirectional = keras.layers.LSTM, keras.layers.Bidirectional
    candidates = [l for l in all_layers(model)
                  if isinstance(l, LSTM) or (isinstance(l, Bidirectional) and isinstance(l.forward_layer, LSTM))]
    if args.layers:
        by_name = {l.name: l for l in candidates}
        chosen = []
        for name in args.layers.split(","):
            if name not in by_name:
                fail(f"no LSTM or Bidirectional(LSTM) layer named {name!r} (have: {', '.join(by_name) or 'none'})")
            chosen.append(by_name[name])
    else:
        chosen = candidates
    if not chosen:
        fail(f"{args.model}: no LSTM layers")

    tensors, paths, settings = {}, [], []
    for layer in chosen:
        bidirectional = isinstance(layer, Bidirectional)
        inner = layer.forward_layer if bidirectional else layer
        config = inner.get_config()
        setting = {
            "activation": config["activation"],
            "recurrent_activation": config["recurrent_activation"],
            "use_bias": config["use_bias"],
            "go_backwards": bool(config.get("go_backwards", False)),
            "time_major": bool(config.get("time_major", False)),  # Keras 2 only
            "merge_mode": layer.merge_mode if bidirectional else None,
            "bidirectional": bidirectional,
        }
        for key in ("activation", "recurrent_activation"):
            if not isinstance(setting[key], str):
                fail(f"layer {layer.name!r}: {key} {setting[key]!r} is not a built-in Keras activation")
        settings.append((layer.name, setting))
        # Names are the paths a freshly built Keras 3 model gives its variables, relative to the model:
        # <layer>/<cell>/<leaf> and <bidirectional>/<forward_lstm|backward_lstm>/<cell>/<leaf>. (The variables' own
        # `path`s are not used: after load_model, Keras 3 names a Bidirectional's sub-layers without the wrapper.)
        sub_layers = [(layer.forward_layer, layer.name + "/" + layer.forward_layer.name + "/"),
                      (layer.backward_layer, layer.name + "/" + layer.backward_layer.name + "/")] \
            if bidirectional else [(layer, layer.name + "/")]
        for sub, scope in sub_layers:
            for variable in sub.weights:
                leaf = leaf_name(variable)
                if leaf not in ("kernel", "recurrent_kernel", "bias"):
                    fail(f"layer {layer.name!r}: unexpected weight {variable.name!r}")
                name = scope + sub.cell.name + "/" + leaf
                if name in tensors:
                    fail(f"two weights named {name!r}")
                value = variable.numpy() if hasattr(variable, "numpy") else keras.ops.convert_to_numpy(variable)
                tensors[name] = np.ascontiguousarray(np.asarray(value, dtype=np.float32))
        paths.append(layer.name)

    first_name, first = settings[0]
    for name, setting in settings[1:]:
        for key, value in setting.items():
            if value != first[key]:
                fail(f"layers {first_name!r} and {name!r} differ in {key} ({first[key]!r} vs {value!r}); culstm runs "
                     "a stack with one setting: export them separately with --layers")
    if first["go_backwards"] and len(settings) > 1:
        fail("go_backwards on stacked layers: each Keras layer returns its outputs reversed, so the stack is not one "
             "reverse LSTM; export one layer at a time")

    keras_meta = {
        "keras_version": keras.__version__,
        "activation": first["activation"],
        "recurrent_activation": first["recurrent_activation"],
        "go_backwards": first["go_backwards"],
        "merge_mode": first["merge_mode"] if first["bidirectional"] else "concat",
        "time_major": first["time_major"],
    }
    metadata = {"culstm.layers": json.dumps(paths), "culstm.keras": json.dumps(keras_meta)}
    save_file(tensors, args.output, metadata=metadata)
    print(f"wrote {args.output}: {len(paths)} layer(s) {paths}, {json.dumps(keras_meta)}")


if __name__ == "__main__":
    main()
