#!/usr/bin/env python3
"""Export one ONNX LSTM node's weights to a safetensors file culstm reads with `--naming onnx`.

culstm reads .onnx files directly (`culstm run --weights model.onnx --onnx-node NAME`); this script is for models
culstm's reader does not take as they are, chiefly models whose weights live in external data files (onnx.load reads
those), and for keeping just the LSTM's weights. It writes the node's W [D,4H,I], R [D,4H,H], B [D,8H] and P [D,3H]
as f32 tensors named W, R, B, P (ONNX's layout and gate order i, o, f, c, unchanged) and the node's attributes as the
"onnx.attributes" metadata (JSON). See docs/formats.md.

usage: export_onnx.py MODEL.onnx OUTPUT.safetensors [--node NAME]

Needs: pip install onnx numpy safetensors
"""
import argparse
import json
import sys


def fail(message):
    print(f"export_onnx: error: {message}", file=sys.stderr)
    sys.exit(1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="the .onnx file (external data next to it is read too)")
    parser.add_argument("output", help="the safetensors file to write")
    parser.add_argument("--node", default="", help="name of the LSTM node (needed when the graph has several)")
    args = parser.parse_args()

    import numpy as np
    import onnx
    from onnx import helper, numpy_helper
    from safetensors.numpy import save_file

    model = onnx.load(args.model)  # loads external data from the model's folder
    graph = model.graph
    lstms = [n for n in graph.node if n.op_type == "LSTM" and n.domain in ("", "ai.onnx")]
    if not lstms:
        fail(f"{args.model}: the main graph has no LSTM node")
    if args.node:
        lstms = [n for n in lstms if n.name == args.node]
        if not lstms:
            fail(f"{args.model}: no LSTM node named {args.node!r}")
    elif len(lstms) > 1:
        fail(f"{args.model}: {len(lstms)} LSTM nodes ({', '.join(repr(n.name) for n in lstms)}); choose one with --node")
    node = lstms[0]

    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for n in graph.node:
        if n.op_type == "Constant" and len(n.output) == 1:
            for a in n.attribute:
                if a.name == "value" and a.type == onnx.AttributeProto.TENSOR:
                    constants[n.output[0]] = numpy_helper.to_array(a.t)

    def constant(index, role, required):
        name = node.input[index] if index < len(node.input) else ""
        if not name:
            if required:
                fail(f"LSTM node {node.name!r} has no {role} input")
            return None
        if name not in constants:
            fail(f"LSTM node {node.name!r}: its {role} input {name!r} is computed in the graph, not a constant")
        return constants[name]

    tensors = {}
    for index, role, required in [(1, "W", True), (2, "R", True), (3, "B", False), (7, "P", False)]:
        value = constant(index, role, required)
        if value is not None:
            if value.dtype.kind != "f":
                fail(f"LSTM node {node.name!r}: {role} has dtype {value.dtype}, expected a floating-point type")
            tensors[role] = np.ascontiguousarray(value.astype(np.float32))
    for index, role in [(5, "initial_h"), (6, "initial_c")]:
        name = node.input[index] if index < len(node.input) else ""
        if name in constants and np.any(constants[name] != 0):
            fail(f"LSTM node {node.name!r}: {role} is a non-zero constant; culstm takes initial states at run time "
                 f"(save it with numpy and pass it as --{'h0' if role == 'initial_h' else 'c0'})")

    attributes = {}
    for a in node.attribute:
        value = helper.get_attribute_value(a)
        if isinstance(value, bytes):
            value = value.decode()
        elif isinstance(value, list):
            value = [v.decode() if isinstance(v, bytes) else v for v in value]
        if a.name == "output_sequence":
            continue  # opset 1: whether Y is an output; no effect on the weights
        attributes[a.name] = value
    metadata = {"onnx.attributes": json.dumps(attributes)}
    save_file(tensors, args.output, metadata=metadata)
    shapes = ", ".join(f"{k} {list(v.shape)}" for k, v in tensors.items())
    print(f"wrote {args.output}: LSTM node {node.name!r}: {shapes}; attributes {json.dumps(attributes)}")


if __name__ == "__main__":
    main()
