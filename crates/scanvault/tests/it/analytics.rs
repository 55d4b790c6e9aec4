//! Fleet analytics against a plain recomputation (see DESIGN.md "Analytics semantics").
