#!/usr/bin/env python3
"""Export the LSTM layers of a Keras model to a safetensors file culstm reads with `--naming keras`.

The tensors are named by Keras's weight paths as a freshly built Keras 3 model names them, relative to the model:
`lstm/lstm_cell/kernel`, `lstm_1/lstm_cell/recurrent_kernel`, `bidirectional/forward_lstm/lstm_cell/bias`,
`bidirectional/backward_lstm/lstm_cell/kernel`, or `bidirectional/<name>/lstm_cell/kernel` for a backward_layer the
user gave (layer names are the model's), and keep Keras's layout (kernel [I, 4u], recurrent_kernel [u, 4u], bias
[4u], gates i, f, c, o). The metadata records what the weights cannot tell (docs/formats.md, "Keras"):
  culstm.layers  the exported layers in stack order (culstm layer 0 first), each with its structure and options:
                 {"path": "lstm", "activation": ..., "recurrent_activation": ..., "go_backwards": ..., "time_major": ...}
                 or {"path": "bidirectional", "merge_mode": "concat", "forward": {"path": ..., <options>},
                     "backward": {"path": ..., <options>}}, read from the loaded model (which LSTM is the wrapper's
                 forward_layer and which its backward_layer), not from names
  culstm.keras   {"keras_version": ...}: hard_sigmoid is clip(0.2x + 0.5) in Keras 2 and clip(x/6 + 0.5) in Keras 3

culstm runs a stack whose LSTMs (every layer, both directions of a Bidirectional) share one LstmSpec: the same units,
activations, use_bias, layout and direction. The script compares every option of every exported LSTM and refuses,
naming the layer and the option, what culstm cannot express; export such a model's layers separately with --layers.
Options that do not change inference (initializers, regularizers, constraints, dropout, implementation, unroll, ...)
are not compared.

usage: export_keras.py MODEL OUTPUT.safetensors [--layers NAME[,NAME...]] [--tf-keras]
  MODEL     a .keras or .h5 file keras.models.load_model reads
  --layers  names of the LSTM / Bidirectional(LSTM) layers to export, in stack order (default: all, model order)
  --tf-keras  use the legacy tf_keras package (Keras 2 under TensorFlow >= 2.16)

Needs: pip install keras safetensors numpy, plus a Keras backend (jax, tensorflow or torch).
Errors are one line on stderr, exit status 1, and no output file.
"""
import argparse
import json
import sys

# LSTM options that leave a trained layer's outputs alone: training-time only (initializers, regularizers,
# constraints, dropout), how Keras computes (implementation, unroll, use_cudnn), what it returns or keeps
# (return_sequences/return_state/stateful are checked where they matter; zero_output_for_mask only changes outputs
# at masked steps, where culstm writes padding), and bookkeeping (name, trainable, dtype: the weights are exported
# as float32 and culstm's dtype is chosen when the model is run).
IGNORED = {
    "name", "trainable", "dtype", "kernel_initializer", "recurrent_initializer", "bias_initializer",
    "unit_forget_bias", "kernel_regularizer", "recurrent_regularizer", "bias_regularizer", "activity_regularizer",
    "kernel_constraint", "recurrent_constraint", "bias_constraint", "dropout", "recurrent_dropout", "seed",
    "implementation", "unroll", "use_cudnn", "return_sequences", "return_state", "stateful", "zero_output_for_mask",
}
# What the LstmSpec holds once for all layers and directions, per Keras option (go_backwards is checked apart: the
# two LSTMs of a Bidirectional layer go opposite ways).
SPEC_FIELD = {"units": "hidden size", "activation": "cell and hidden activation",
              "recurrent_activation": "gate activation", "use_bias": "bias setting", "time_major": "batch layout"}
# The options culstm.layers carries for each LSTM (docs/formats.md).
WRITTEN = ("activation", "recurrent_activation", "go_backwards", "time_major")


class Refused(Exception):
    """A model culstm cannot run as exported: one line for the user."""


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


def lstm_options(lstm):
    """The LSTM's config with the defaults of options older Keras versions lack."""
    config = dict(lstm.get_config())
    config.setdefault("go_backwards", False)
    config.setdefault("time_major", False)  # Keras 2 only
    for key in ("activation", "recurrent_activation"):
        if not isinstance(config[key], str):
            raise Refused(f"LSTM {lstm.name!r}: {key} {config[key]!r} is not a built-in Keras activation")
    return config


def stack_lstms(chosen, Bidirectional):
    """[(description for messages, layer index, keras LSTM, path, options)] for every LSTM of the stack, and the
    culstm.layers entries. Paths are those of a freshly built Keras 3 model (the variables' own `path`s are not
    used: after load_model, Keras 3 names a Bidirectional's LSTMs without the wrapper)."""
    lstms, entries = [], []
    for index, layer in enumerate(chosen):
        if isinstance(layer, Bidirectional):
            pair = []
            for role, sub in (("forward", layer.forward_layer), ("backward", layer.backward_layer)):
                options = lstm_options(sub)
                path = layer.name + "/" + sub.name
                lstms.append((f"layer {layer.name!r} ({role} LSTM {sub.name!r})", index, sub, path, options))
                pair.append({"path": path, **{key: options[key] for key in WRITTEN}})
            entries.append({"path": layer.name, "merge_mode": layer.merge_mode, "forward": pair[0], "backward": pair[1]})
        else:
            options = lstm_options(layer)
            lstms.append((f"layer {layer.name!r}", index, layer, layer.name, options))
            entries.append({"path": layer.name, **{key: options[key] for key in WRITTEN}})
    return lstms, entries


def check_stack(chosen, lstms, Bidirectional):
    """Raises Refused for what one culstm LstmSpec cannot express, naming the layer and the option."""
    bidirectional = [isinstance(layer, Bidirectional) for layer in chosen]
    if any(bidirectional) and not all(bidirectional):
        raise Refused(f"layers {chosen[0].name!r} and {chosen[bidirectional.index(not bidirectional[0])].name!r}: "
                      "a stack mixing Bidirectional and unidirectional layers cannot be one culstm model; export them "
                      "separately with --layers")
    for layer in chosen:
        if isinstance(layer, Bidirectional):
            if layer.merge_mode != "concat":
                raise Refused(f"layer {layer.name!r} has merge_mode={layer.merge_mode!r}: culstm concatenates the "
                              "two directions (merge_mode='concat') only")
            forward, backward = layer.forward_layer.go_backwards, layer.backward_layer.go_backwards
            if forward or not backward:
                raise Refused(f"layer {layer.name!r}: its forward LSTM has go_backwards={forward} and its backward "
                              f"LSTM go_backwards={backward}; culstm's bidirectional direction is a forward LSTM with "
                              "go_backwards=False beside a backward one with go_backwards=True")
    for layer in chosen[:-1]:
        if not layer.return_sequences:
            raise Refused(f"layer {layer.name!r} has return_sequences=False but is not the last exported layer: "
                          "culstm feeds each layer the whole output sequence of the one before")
    first_name, _, _, _, first = lstms[0]
    for name, index, _, _, options in lstms[1:]:
        for key in sorted(set(options) | set(first)):
            if key in IGNORED or key == "go_backwards" or options.get(key) == first.get(key):
                continue
            what = SPEC_FIELD.get(key)
            if what is None:
                raise Refused(f"{name} has {key}={options.get(key)!r}, {first_name} {key}={first.get(key)!r}: culstm "
                              f"cannot run LSTMs that differ in {key} as one model")
            raise Refused(f"culstm's LstmSpec has one {what} for all layers and directions; {name} has "
                          f"{key}={options.get(key)!r}, {first_name} {key}={first.get(key)!r}")
    if not bidirectional[0]:
        directions = {options["go_backwards"] for _, _, _, _, options in lstms}
        if len(directions) > 1:
            raise Refused("the layers differ in go_backwards: culstm's LstmSpec has one direction for all layers")
        if first["go_backwards"] and len(lstms) > 1:
            raise Refused("go_backwards on stacked layers: each Keras layer returns its outputs reversed, so the "
                          "stack is not one reverse LSTM; export one layer at a time")


def lstm_tensors(lstms, keras, np):
    """{Keras weight path: float32 array} for every LSTM."""
    tensors = {}
    for name, _, lstm, path, _ in lstms:
        for variable in lstm.weights:
            leaf = leaf_name(variable)
            if leaf not in ("kernel", "recurrent_kernel", "bias"):
                raise Refused(f"{name}: unexpected weight {variable.name!r}")
            key = path + "/" + lstm.cell.name + "/" + leaf
            if key in tensors:
                raise Refused(f"two weights named {key!r}")
            value = variable.numpy() if hasattr(variable, "numpy") else keras.ops.convert_to_numpy(variable)
            tensors[key] = np.ascontiguousarray(np.asarray(value, dtype=np.float32))
    return tensors


def export(model_path, output, layer_names, tf_keras):
    if tf_keras:
        import tf_keras as keras
    else:
        import keras
    import numpy as np
    from safetensors.numpy import save_file

    model = keras.models.load_model(model_path, compile=False)
    LSTM, Bidirectional = keras.layers.LSTM, keras.layers.Bidirectional
    candidates = [l for l in all_layers(model)
                  if isinstance(l, LSTM) or (isinstance(l, Bidirectional) and isinstance(l.forward_layer, LSTM))]
    if layer_names:
        by_name = {l.name: l for l in candidates}
        chosen = []
        for name in layer_names.split(","):
            if name not in by_name:
                raise Refused(f"no LSTM or Bidirectional(LSTM) layer named {name!r} "
                              f"(have: {', '.join(by_name) or 'none'})")
            chosen.append(by_name[name])
    else:
        chosen = candidates
    if not chosen:
        raise Refused(f"{model_path}: no LSTM layers")
    for layer in chosen:
        if isinstance(layer, Bidirectional) and not isinstance(layer.backward_layer, LSTM):
            raise Refused(f"layer {layer.name!r}: its backward layer {layer.backward_layer.name!r} is a "
                          f"{type(layer.backward_layer).__name__}, not an LSTM")

    lstms, entries = stack_lstms(chosen, Bidirectional)
    check_stack(chosen, lstms, Bidirectional)
    tensors = lstm_tensors(lstms, keras, np)
    metadata = {"culstm.layers": json.dumps(entries), "culstm.keras": json.dumps({"keras_version": keras.__version__})}
    save_file(tensors, output, metadata=metadata)
    return [layer.name for layer in chosen], metadata


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("output")
    parser.add_argument("--layers", default="", help="comma-separated layer names, in stack order")
    parser.add_argument("--tf-keras", action="store_true", help="import tf_keras instead of keras")
    args = parser.parse_args()
    try:
        names, metadata = export(args.model, args.output, args.layers, args.tf_keras)
    except Refused as e:
        print(f"export_keras: error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {args.output}: {len(names)} layer(s) {names}, culstm.layers {metadata['culstm.layers']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
