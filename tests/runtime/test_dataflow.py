"""The consumers of each compared call, from tensor identity and from an autograd-like graph (no framework)."""

from __future__ import annotations

from dataclasses import dataclass, field

from padiff.runtime.engine.dataflow import Dataflow


@dataclass(eq=False)
class Node:
    inputs: list[Node] = field(default_factory=list)


@dataclass(eq=False)
class T:
    node: Node | None = None


def _flow() -> Dataflow:
    return Dataflow(lambda t: t.node, lambda n: n.inputs)


def _call(flow: Dataflow, key: tuple | None, inputs: list[T], outputs: list[T]) -> None:
    flow.enter(inputs)
    if key is not None:
        flow.set_key(key)
    flow.leave(outputs)


def test_identity_and_uncompared_calls_pass_outputs_on():
    flow = _flow()
    a, b = T(), T()
    _call(flow, (0, "r", "r", 0), [], [a])
    _call(flow, None, [a], [b])  # a call that is not compared hands on who made its input
    _call(flow, (0, "c", "c", 0), [b], [T()])
    assert flow.consumers() == {(0, "r", "r", 0): {(0, "c", "c", 0)}}


def test_functional_code_between_calls_is_walked_through_the_graph():
    flow = _flow()
    made = T(Node())
    _call(flow, (0, "r", "r", 0), [], [made])
    mixed = T(Node([Node([made.node]), Node()]))  # softmax(made) * something else
    _call(flow, (0, "c", "c", 0), [mixed], [T()])
    assert flow.consumers() == {(0, "r", "r", 0): {(0, "c", "c", 0)}}


def test_an_output_no_call_reads_is_consumed_by_the_enclosing_call():
    flow = _flow()
    flow.enter([])
    flow.set_key((0, "block", "block", 0))
    _call(flow, (0, "router", "router", 0), [], [T()])
    flow.leave([T()])
    assert flow.consumers() == {(0, "router", "router", 0): {(0, "block", "block", 0)}}
    flow.clear()
    assert flow.consumers() == {}
