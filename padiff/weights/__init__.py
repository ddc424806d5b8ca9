"""Weight copy plans, shared by ``assign_weight``, ``auto_weights`` and ``import_weights``.

Which layer's tensors become which (``assign_plan``, ``opaque_plan``, ``live_map``), how each
tensor converts (``pair_plan``, ``layout_infer``, ``layout_stack``, ``special_init``), and the
all-or-nothing copy (``assign``). Framework work goes through :mod:`padiff.adapters`.
"""
