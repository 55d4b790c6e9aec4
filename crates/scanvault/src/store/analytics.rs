//! Fleet analytics (see DESIGN.md, "Analytics semantics").
