"""Graph keys: equal for the same computation, different for any change, stable across
processes, and refused for what PyTensor compares by a rule the key cannot follow."""

import subprocess
import sys
from itertools import combinations

import pytensor
import pytensor.scalar as ps
import pytensor.tensor as pt
import pytest
from pytensor.graph.op import Op
from pytensor.tensor.elemwise import Elemwise

from bayes_sor.sampling.graph_key import Unkeyable, graph_key, op_key

GRAPH = """
import numpy as np
import pytensor
import pytensor.tensor as pt

def graph(constant=(1.0, 2.0), shared=(3.0, 4.0, 5.0), op=pt.exp):
    x = pt.dvector("x")
    data = pytensor.shared(np.array(shared), name="data")
    out = op(x * np.array(constant)).sum() + data.sum() * pt.log1p(pt.sqr(x)).mean()
    return [out, pt.pad(x, (1, 0))], [x]
"""
namespace: dict = {}
exec(GRAPH, namespace)  # the same text builds the graph in the subprocess below
graph = namespace["graph"]


def test_the_same_graph_built_twice_has_one_key():
    assert graph_key(*graph()) == graph_key(*graph())


@pytest.mark.parametrize(
    "change",
    [
        {"constant": (1.0, 2.5)},  # a constant's value
        {"shared": (3.0, 4.0)},  # a shared variable's shape
        {"op": pt.sin},  # an op
    ],
)
def test_any_change_to_the_computation_changes_the_key(change):
    assert graph_key(*graph(**change)) != graph_key(*graph())


def test_a_shared_variables_value_is_read_at_run_time_so_not_keyed():
    assert graph_key(*graph(shared=(7.0, 8.0, 9.0))) == graph_key(*graph())


def test_inputs_are_keyed_by_position():
    a, b = pt.dvector("a"), pt.dvector("b")
    assert graph_key([a - b], [a, b]) != graph_key([a - b], [b, a])
    with pytest.raises(Unkeyable, match="input"):
        graph_key([a - b], [a])


def test_the_key_is_the_same_in_another_process():
    code = GRAPH + "from bayes_sor.sampling.graph_key import graph_key\nprint(graph_key(*graph()))"
    other = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert other == graph_key(*graph())


OPS = [
    Elemwise(ps.add),
    Elemwise(ps.add),
    Elemwise(ps.mul),
    Elemwise(ps.add, {0: 0}),
    Elemwise(ps.lt),
    Elemwise(ps.gt),
    ps.add,
    ps.mul,
    ps.exp,
    ps.exp,
    ps.Cast(ps.float32),
    ps.Cast(ps.float64),
    pt.pad(pt.dvector(), (1, 0)).owner.op,
    pt.pad(pt.dvector(), (1, 0)).owner.op,
    pt.pad(pt.dvector(), (2, 0)).owner.op,
]


@pytest.mark.parametrize(("a", "b"), list(combinations(range(len(OPS)), 2)))
def test_op_keys_agree_with_pytensors_own_op_equality(a, b):
    # Guards the hand-written equalities graph_key follows (Elemwise's, the scalar ops',
    # OpFromGraph's): if PyTensor changes one, this fails instead of a stale model loading.
    assert (op_key(OPS[a]) == op_key(OPS[b])) == (OPS[a] == OPS[b])


def test_what_cannot_be_keyed_is_refused():
    class Opaque(Op):  # no __props__: PyTensor compares it by identity
        def make_node(self, x):
            return pytensor.graph.Apply(self, [x], [x.type()])

        def perform(self, node, inputs, outputs):
            outputs[0][0] = inputs[0]

    x = pt.dvector("x")
    with pytest.raises(Unkeyable, match="Opaque"):
        graph_key([Opaque()(x)], [x])
    closure = pt.pad(x, (1, 0), mode="constant").owner.op
    closure.pullback_overrides = lambda *args: args  # a gradient override: not in the graph
    with pytest.raises(Unkeyable, match="compares by a rule"):
        op_key(closure)
