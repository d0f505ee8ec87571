"""A content key of a PyTensor graph, stable across processes: equal keys, same computation.

PyTensor keys its compiled kernels on the graph *after* its rewrites, which is the expensive
part of compiling. :mod:`bayes_sor.sampling.nutpie_cache`
needs a key of the graph *before* them, to find a compiled model without rewriting. No library
offers one (``Op.__hash__`` of most ops is per process), so it is built here from what PyTensor
itself uses to decide that two ops compute the same thing: an op's class and its ``__props__``
(the equality PyTensor generates for them); the few hand-written equalities it follows
(Elemwise's, the scalar ops', OpFromGraph's inner graph) are listed below and checked by a
test against PyTensor's own ``==``. Constants enter with their values; shared variables (data
a compiled function reads when it runs) with their name, type and shape. Anything whose
equality is defined otherwise raises :class:`Unkeyable`, so a graph is either keyed soundly
or not cached at all.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

import numpy as np
from pytensor.compile.builders import OpFromGraph
from pytensor.compile.sharedvalue import SharedVariable
from pytensor.graph.basic import Constant, Variable
from pytensor.graph.op import Op
from pytensor.graph.traversal import toposort
from pytensor.graph.type import Type
from pytensor.scalar.basic import (
    FixedLogicalComparison,
    LogicalComparison,
    ScalarOp,
    ScalarType,
)
from pytensor.tensor.elemwise import Elemwise
from pytensor.tensor.type import TensorType

#: the ``__eq__`` PyTensor's ``MetaType`` generates from ``__props__``
_PROPS_EQ = "MetaType.__new__.<locals>.__eq__"
#: hand-written ``__eq__`` methods that compare exactly the class's ``__props__`` (read in
#: PyTensor 3.3's source; tests/sampling/test_graph_key.py fails if one stops doing so)
_PROPS_EQ_BY_HAND = (Elemwise.__eq__,)
#: scalar ops' hand-written ``__eq__``: the class, ``output_types_preference`` and these
_SCALAR_EQ = {
    ScalarOp.__eq__: (),
    LogicalComparison.__eq__: ("bool",),
    FixedLogicalComparison.__eq__: ("bool",),
}


class Unkeyable(TypeError):
    """The graph holds something whose identity cannot be written down across processes."""


def graph_key(outputs: Sequence[Variable], inputs: Sequence[Variable] = ()) -> str:
    """sha256 of the graph computing ``outputs``; ``inputs`` (e.g. value variables) are
    numbered by position, so which slot a variable fills is part of the key."""
    ids: dict[int, int] = {id(v): i for i, v in enumerate(inputs)}
    parts: list = [("inputs", tuple(_type_key(v.type) for v in inputs))]

    def ref(var: Variable) -> int:
        if id(var) not in ids:
            ids[id(var)] = len(ids)
            parts.append(("leaf", ids[id(var)], _leaf_key(var)))
        return ids[id(var)]

    for node in toposort(outputs):
        args = tuple(ref(v) for v in node.inputs)
        parts.append(
            ("apply", op_key(node.op), args, tuple(_type_key(o.type) for o in node.outputs))
        )
        for out in node.outputs:
            ids[id(out)] = len(ids)
    parts.append(("outputs", tuple(ref(v) for v in outputs)))
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def op_key(op: Op) -> tuple:
    """What makes ``op`` equal to another op in PyTensor's own terms."""
    cls = type(op)
    if _compares_props(cls) or cls.__eq__ in _PROPS_EQ_BY_HAND:
        return (_name(cls), *(value_key(getattr(op, p)) for p in cls.__props__))
    if (
        cls.__eq__ is OpFromGraph.__eq__
        and op.pullback_overrides is None
        and op.pushforward_overrides is None
        and op._connection_pattern is None
    ):
        # compared by its inner graph (and flags); without overrides the graph is all it does
        return (
            _name(cls),
            graph_key(op.fgraph.outputs, op.fgraph.inputs),
            op.is_inline,
            value_key(op.destroy_map),
        )
    if isinstance(op, ScalarOp) and cls.__eq__ in _SCALAR_EQ:
        return (
            _name(cls),
            *(
                value_key(getattr(op, a, None))
                for a in ("output_types_preference", *_SCALAR_EQ[cls.__eq__])
            ),
        )
    raise Unkeyable(f"op {cls.__qualname__} compares by a rule the key cannot follow")


def value_key(value) -> object:
    """A process-independent description of an op property or a constant's value."""
    if value is None or isinstance(value, bool | int | float | complex | str | bytes):
        return (type(value).__name__, value)
    if isinstance(value, np.ndarray | np.generic):
        array = np.ascontiguousarray(value)
        return ("array", array.dtype.str, array.shape, hashlib.sha256(array.tobytes()).hexdigest())
    if isinstance(value, np.dtype):
        return ("dtype", value.str)
    if isinstance(value, slice):
        return ("slice", value_key(value.start), value_key(value.stop), value_key(value.step))
    if isinstance(value, Mapping):
        return ("map", tuple(sorted((repr(value_key(k)), value_key(v)) for k, v in value.items())))
    if isinstance(value, tuple | list):
        return (type(value).__name__, tuple(value_key(v) for v in value))
    if isinstance(value, Op):
        return op_key(value)
    if isinstance(value, Type):
        return _type_key(value)
    if _compares_props(type(value)):
        return (_name(type(value)), *(value_key(getattr(value, p)) for p in type(value).__props__))
    if isinstance(value, type) or (callable(value) and hasattr(value, "__qualname__")):
        name = _name(value)
        if "<" in name:  # a lambda or a closure: its behaviour is not in its name
            raise Unkeyable(f"{name} has no stable identity")
        return ("named", name)
    raise Unkeyable(f"cannot key a {type(value).__qualname__}")


def _type_key(t: Type) -> tuple:
    if isinstance(t, TensorType):  # TensorType.__eq__: class, dtype and static shape
        return (_name(type(t)), t.dtype, t.shape)
    if isinstance(t, ScalarType):
        return (_name(type(t)), t.dtype)
    if _compares_props(type(t)):
        return (_name(type(t)), *(value_key(getattr(t, p)) for p in type(t).__props__))
    raise Unkeyable(f"cannot key the type {type(t).__qualname__}")


def _leaf_key(var: Variable) -> tuple:
    if isinstance(var, Constant):
        return ("constant", _type_key(var.type), value_key(var.data))
    if isinstance(var, SharedVariable):
        # read when the compiled function runs, not compiled in: its shape is what matters
        return ("shared", var.name, _type_key(var.type), np.shape(var.get_value(borrow=True)))
    raise Unkeyable(f"the graph needs the input {var} that was not given")


def _compares_props(cls: type) -> bool:
    return (
        getattr(cls, "__props__", None) is not None
        and cls.__eq__.__module__ == "pytensor.graph.utils"
        and cls.__eq__.__qualname__ == _PROPS_EQ
    )


def _name(obj) -> str:
    return f"{obj.__module__}.{obj.__qualname__}"
